"""SpikeDistillClsHead and DistillImageClassifier: losses against hand computation, averaging at
inference, the teacher's hard labels, and the teacher kept out of the student's state."""
import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS
from mmpretrain.structures import DataSample

from mmspike.classification.classifiers import DistillImageClassifier
from mmspike.classification.heads import SpikeDistillClsHead

TINY_TEACHER = dict(
    type='ImageClassifier',
    backbone=dict(type='mmspike.SpikingConvNet', arch='tiny'),
    neck=dict(type='mmspike.SpikeGlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=5, in_channels=128))


@pytest.fixture(autouse=True)
def mmpretrain_scope():
    init_default_scope('mmpretrain')


def _samples(labels, teacher=None):
    out = []
    for i, y in enumerate(labels):
        ds = DataSample().set_gt_label(y)
        if teacher is not None:
            ds.set_field(torch.tensor([teacher[i]]), 'teacher_label')
        out.append(ds)
    return out


def test_head_losses_and_inference_average():
    torch.manual_seed(0)
    head = SpikeDistillClsHead(num_classes=5, in_channels=8, distill_weight=0.3)
    feats = (torch.randn(4, 8), )
    main, kd = head.fc(feats[0]), head.fc_kd(feats[0])
    assert torch.allclose(head(feats), (main + kd) / 2)

    labels, teacher = [0, 1, 2, 3], [4, 4, 0, 1]
    losses = head.loss(feats, _samples(labels, teacher))
    y, t = torch.tensor(labels), torch.tensor(teacher)
    assert torch.allclose(losses['loss_cls'], 0.7 * F.cross_entropy(main, y))
    assert torch.allclose(losses['loss_distill'], 0.3 * F.cross_entropy(kd, t))
    # No teacher labels: the distillation branch learns the ground truth.
    losses = head.loss(feats, _samples(labels))
    assert torch.allclose(losses['loss_distill'], 0.3 * F.cross_entropy(kd, y))
    pred = head.predict(feats)
    assert pred[0].pred_score.shape == (5, )


def test_head_bad_arguments():
    with pytest.raises(ValueError, match='distill_weight'):
        SpikeDistillClsHead(num_classes=5, in_channels=8, distill_weight=1.5)
    with pytest.raises(ValueError, match=r'pooled \[B, 8\]'):
        SpikeDistillClsHead(num_classes=5, in_channels=8)((torch.randn(1, 2, 8), ))


def test_distill_classifier_uses_teacher_argmax_and_hides_teacher():
    torch.manual_seed(0)
    student = dict(
        backbone=dict(type='mmspike.SpikingConvNet', arch='tiny'),
        neck=dict(type='mmspike.SpikeGlobalAveragePooling'),
        head=dict(type='mmspike.SpikeDistillClsHead', num_classes=5, in_channels=128))
    model = MMPRETRAIN_MODELS.build(
        dict(type='mmspike.DistillImageClassifier', teacher=TINY_TEACHER, **student))
    plain = MMPRETRAIN_MODELS.build(dict(type='ImageClassifier', **student))
    assert isinstance(model, DistillImageClassifier)
    # The teacher is neither in the checkpoint nor among the trainable parameters.
    assert model.state_dict().keys() == plain.state_dict().keys()
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in plain.parameters())
    assert not any(p.requires_grad for p in model.teacher.parameters())

    inputs = torch.randn(3, 3, 16, 16)
    samples = _samples([0, 1, 2])
    expected = model.teacher(inputs, mode='tensor').argmax(1)
    losses = model.loss(inputs, samples)
    assert torch.equal(torch.cat([s.teacher_label for s in samples]), expected)
    kd = model.head.fc_kd(model.extract_feat(inputs)[-1])
    assert torch.allclose(losses['loss_distill'], 0.5 * F.cross_entropy(kd, expected), atol=1e-6)
    assert model.teacher.training is False


def test_distill_classifier_rejects_bad_teacher():
    with pytest.raises(TypeError, match='teacher must be'):
        DistillImageClassifier(teacher='caformer', backbone=dict(type='mmspike.SpikingConvNet'))
