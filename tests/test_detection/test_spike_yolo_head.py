"""SpikeYOLOHead as an mmdet dense head: decoding, task-aligned targets, losses, stride checks."""
import math

import pytest
import torch
from mmengine.structures import InstanceData

from mmspike.detection.heads import SpikeYOLOHead

STRIDES = (8, 16, 32)


def make_head(num_classes=3, channels=(8, 16, 16), **kwargs):
    torch.manual_seed(0)
    return SpikeYOLOHead(num_classes, channels, strides=STRIDES, **kwargs)


def metas(h=128, w=128, n=2, scale=1.0):
    return [dict(img_shape=(h, w), batch_input_shape=(h, w), ori_shape=(h, w),
                 scale_factor=(scale, scale)) for _ in range(n)]


def gts():
    return [InstanceData(bboxes=torch.tensor([[10., 12., 70., 90.], [60., 30., 120., 110.]]),
                         labels=torch.tensor([0, 2])),
            InstanceData(bboxes=torch.tensor([[20., 20., 100., 60.]]), labels=torch.tensor([1]))]


def feats(head, h=128, w=128, B=2, T=1, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(T, B, c, h // s, w // s, generator=g) * 2
            for c, s in zip(head.in_channels, STRIDES)]


def test_decode_is_dfl_expectation_from_cell_centres_and_rescales():
    head = make_head().eval()
    cls = [torch.full((1, 3, 64 // s, 64 // s), -20.) for s in STRIDES]
    box = [torch.zeros(1, 64, 64 // s, 64 // s) for s in STRIDES]
    cls[0][0, 1, 2, 3] = 5.0  # class 1 at row 2, col 3 of the stride-8 level: centre (28, 20)
    for side, bin_ in enumerate((2, 1, 3, 4)):  # l, t, r, b in stride units
        box[0][0, side * 16 + bin_, 2, 3] = 40.0  # a peaked distribution: expectation = bin
    (res, ) = head.predict_by_feat(cls, box, batch_img_metas=metas(64, 64, 1, scale=2.0),
                                   rescale=True)
    assert res.labels.tolist() == [1]
    assert res.scores.item() == pytest.approx(torch.sigmoid(torch.tensor(5.)).item())
    # (28 - 16, 20 - 8, 28 + 24, 20 + 32) in the input, halved back to the original image
    torch.testing.assert_close(res.bboxes, torch.tensor([[6., 6., 26., 26.]]))


def test_forward_shapes_and_static_maps_are_one_time_step():
    head = make_head().eval()
    x = feats(head, T=2)
    cls, box = head(x)
    assert [tuple(c.shape) for c in cls] == [(2, 3, 128 // s, 128 // s) for s in STRIDES]
    assert [tuple(b.shape) for b in box] == [(2, 64, 128 // s, 128 // s) for s in STRIDES]
    x1 = [f[:1] for f in x]
    for a, b in zip(head(x1)[0], head([f[0] for f in x1])[0]):
        torch.testing.assert_close(a, b)
    # YOLOv8 priors: uniform box bins, class prior ~5 objects per 640x640 image
    assert head.reg_branches[0][-1].conv.bias.eq(1.0).all()
    assert head.cls_branches[2][-1].conv.bias[0].item() == pytest.approx(
        math.log(5 / 3 / (640 / 32)**2))


def test_task_aligned_targets():
    head = make_head()
    x = feats(head)
    cls, box = head(x)
    sizes = [c.shape[-2:] for c in cls]
    priors = torch.cat(head.prior_generator.grid_priors(sizes, device='cpu', with_stride=True))
    points, strides = priors[:, :2], priors[:, 2:3]
    logits = torch.cat([c[0].permute(1, 2, 0).reshape(-1, 3) for c in cls]).detach()
    dist = torch.cat([b[0].permute(1, 2, 0).reshape(-1, 4, 16) for b in box]).detach()
    from mmdet.structures.bbox import distance2bbox
    pred = distance2bbox(points, head._integral(dist) * strides)
    gt = gts()[0]
    cls_t, box_t, w = head._targets_single(logits, pred, torch.cat([points, points], 1), gt, None)
    pos = w > 0
    assert 0 < pos.sum() <= 2 * head.assigner.topk
    # positives: centre inside their object, target box = that object, class target at its label
    inside = ((points[pos] > box_t[pos, :2]) & (points[pos] < box_t[pos, 2:])).all(1)
    assert inside.all()
    gt_of = [int((gt.bboxes == b).all(1).nonzero()) for b in box_t[pos]]
    labels = gt.labels[gt_of]
    assert torch.equal(cls_t[pos].argmax(1), labels)
    torch.testing.assert_close(cls_t[pos].max(1).values, w[pos])
    assert cls_t[~pos].eq(0).all() and w.max() <= 1
    # per object, the best positive gets the object's best IoU (YOLOv8 normalisation)
    from mmdet.structures.bbox import bbox_overlaps
    for j in set(gt_of):
        sel = torch.tensor(gt_of) == j
        ious = bbox_overlaps(pred[pos][sel], gt.bboxes[j:j + 1]).squeeze(1)
        assert w[pos][sel].max().item() == pytest.approx(ious.max().item(), rel=1e-4)


def test_losses_train_the_head():
    head = make_head()
    x = feats(head)
    opt = torch.optim.Adam(head.parameters(), lr=3e-3)
    history = []
    for _ in range(25):
        losses = head.loss_by_feat(*head(x), gts(), metas())
        assert set(losses) == {'loss_cls', 'loss_bbox', 'loss_dfl'}
        total = sum(losses.values())
        history.append({k: v.item() for k, v in losses.items()})
        opt.zero_grad()
        total.backward()
        opt.step()
    first, last = history[0], history[-1]
    assert all(v > 0 and math.isfinite(v) for v in first.values())
    assert last['loss_bbox'] < 0.7 * first['loss_bbox']
    assert last['loss_dfl'] < 0.7 * first['loss_dfl']
    assert sum(last.values()) < 0.6 * sum(first.values())


def test_image_without_objects_and_quality_focal_loss():
    head = make_head(loss_cls=dict(type='QualityFocalLoss', beta=2.0, loss_weight=1.0))
    empty = [InstanceData(bboxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.long))] * 2
    losses = head.loss_by_feat(*head(feats(head)), empty, metas())
    assert losses['loss_bbox'].item() == 0 and losses['loss_dfl'].item() == 0
    assert losses['loss_cls'].item() > 0
    sum(losses.values()).backward()  # every branch stays in the graph
    assert all(p.grad is not None for p in head.parameters())
    losses = head.loss_by_feat(*head(feats(head)), gts(), metas())
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())


def test_wrong_strides_are_caught():
    head = make_head()
    cls, box = head(feats(head))
    with pytest.raises(ValueError, match='is not at stride 8'):
        head.loss_by_feat(cls, box, gts(), metas(256, 256))
    with pytest.raises(ValueError, match='is not at stride 8'):
        head.eval().predict_by_feat(cls, box, batch_img_metas=metas(256, 256))
    with pytest.raises(ValueError, match='one entry per level'):
        SpikeYOLOHead(3, (8, 16), strides=STRIDES)
    with pytest.raises(ValueError, match='has 3 levels, got 2'):
        head(feats(head)[:2])
    # mmspike's input-layout rule: a 4-D input is [B, C, H, W]; a [T, B, N, C] token tensor or a
    # wrong channel count is refused, naming the level
    x = feats(head)
    with pytest.raises(ValueError, match=r'SpikeYOLOHead level 1 expects 16 channels'):
        head([x[0], torch.randn(1, 2, 8, 16), x[2]])
    with pytest.raises(ValueError, match=r'SpikeYOLOHead level 0 expects a \[T, B, C, H, W\]'):
        head([x[0][0, 0]] + x[1:])
