"""HARDVSDataset on the bundled sample, and raw events -> loss and prediction through the model."""
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate

import mmspike.classification  # noqa: F401
from mmspike.classification.datasets import HARDVS_CLASSES, HARDVSDataset, load_hardvs_classes
from mmspike.classification.datasets.hardvs import HARDVS_CLASS_FILE
from mmspike.registry import DATASETS, MODELS

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO / '..' / 'shared'
SAMPLE = REPO / 'tests' / 'data' / 'hardvs_sample'
SAMPLE_CONFIG = REPO / 'configs' / 'hardvs' / 'e-spikeformer-19m_hardvs_sample.py'
FULL_CONFIG = REPO / 'configs' / 'hardvs' / 'e-spikeformer-19m_hardvs.py'
HAS_ESPIKEFORMER = (REPO / 'mmspike' / 'models' / 'backbones' / 'e_spikeformer.py').is_file() \
    and 'ESpikeFormer' in MODELS.module_dict

FRAME_TEST_PIPELINE = [
    dict(type='mmspike.SampleFrameClip', clip_len=8, test_mode=True),
    dict(type='mmspike.LoadFrameClip'),
    dict(type='mmspike.ResizeClip', scale=73),
    dict(type='mmspike.CenterCropClip', crop_size=64),
    dict(type='mmspike.FramesToPolarity'),
    dict(type='mmspike.PackEventInputs'),
]


def test_classes():
    assert len(HARDVS_CLASSES) == 300
    assert HARDVS_CLASSES[0] == 'L type clamp back'
    assert HARDVS_CLASSES[1] == 'wink_ Blink an eye'
    assert HARDVS_CLASSES[299] == 'Mobile Card 3'
    assert len(set(HARDVS_CLASSES)) == 300
    shared = SHARED / 'data' / 'hardvs' / 'HARDVS_300_class.txt'
    if shared.is_file():  # the bundled copy is byte-for-byte the upstream file
        digest = hashlib.sha256(shared.read_bytes()).hexdigest()
        assert hashlib.sha256(Path(HARDVS_CLASS_FILE).read_bytes()).hexdigest() == digest


def test_class_file_errors(tmp_path):
    f = tmp_path / 'c.txt'
    f.write_text('Action001 a\r\nAction003 c\r\n')
    with pytest.raises(ValueError, match='Action numbers must be 1..2 each once'):
        load_hardvs_classes(str(f))
    f.write_text('walk\nrun\n')
    assert load_hardvs_classes(str(f)) == ('walk', 'run')


def test_event_and_frame_layouts():
    ev = HARDVSDataset(ann_file='ann_events_train.txt', data_root=str(SAMPLE))
    assert len(ev) == 4 and ev.metainfo['classes'] == HARDVS_CLASSES
    info = ev.get_data_info(0)
    assert info['event_path'].endswith('events/action_001/dvxplorer_seg0.npz')
    assert info['sensor_size'] == (346, 260) and info['gt_label'] == 0
    assert ev.get_gt_labels().tolist() == [0, 0, 1, 1]
    fr = DATASETS.build(dict(type='HARDVSDataset', ann_file='ann_frames_val.txt',
                             data_root=str(SAMPLE)))
    assert len(fr) == 2 and fr.get_data_info(1)['frame_dir'].endswith('nmnist_saccade2')
    assert fr.get_data_info(0)['ann_total_frames'] == 10


def test_upstream_layouts(tmp_path):
    """spikingjelly lists paths without '.npz'; upstream's rawframes add a folder level."""
    (tmp_path / 'a' / 'rec1' / 'dvs').mkdir(parents=True)
    (tmp_path / 'a' / 'rec1' / 'aps').mkdir()
    for sub in ('dvs', 'aps'):
        (tmp_path / 'a' / 'rec1' / sub / 'img_00001.png').write_bytes(b'')
    src = SAMPLE / 'events' / 'action_002' / 'nmnist_saccade0.npz'
    (tmp_path / 'b').mkdir()
    (tmp_path / 'b' / 'rec2.npz').write_bytes(src.read_bytes())
    ann = tmp_path / 'list.txt'
    ann.write_text('a/rec1 12 5\r\nb/rec2 7\r\n\r\n')
    ds = HARDVSDataset(ann_file=str(ann), data_prefix=str(tmp_path))
    infos = [ds.get_data_info(i) for i in range(len(ds))]
    assert [Path(i.get('frame_dir', i.get('event_path'))).relative_to(tmp_path).as_posix()
            for i in infos] == ['a/rec1/aps', 'a/rec1/dvs', 'b/rec2.npz']
    assert [i['gt_label'] for i in infos] == [5, 5, 7]
    with pytest.raises(FileNotFoundError, match='no frames'):
        HARDVSDataset(ann_file=str(ann), data_prefix=str(tmp_path), expand_subfolders=False)


@pytest.mark.parametrize('line, match', [
    ('b/rec2.npz 300', r'label 300 outside 0..299 \(labels are 0-based\)'),
    ('b/rec2.npz x', 'label and frame count must be integers'),
    ('b/rec2.npz', r'line 1: expected "<path> <label>"'),
    ('missing 3', r'line 1: .*missing is neither a frame folder nor an event file'),
])
def test_bad_annotations(tmp_path, line, match):
    (tmp_path / 'b').mkdir()
    (tmp_path / 'b' / 'rec2.npz').write_bytes(b'')
    ann = tmp_path / 'list.txt'
    ann.write_text(line + '\n')
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        HARDVSDataset(ann_file=str(ann), data_prefix=str(tmp_path))


def test_malformed_event_file_in_dataset(tmp_path):
    np.savez(tmp_path / 'neg.npz', t=np.array([-5, 0]), x=np.zeros(2, np.uint16),
             y=np.zeros(2, np.uint16), p=np.zeros(2, np.uint8))
    (tmp_path / 'ann.txt').write_text('neg.npz 0\n')
    ds = HARDVSDataset(ann_file=str(tmp_path / 'ann.txt'), data_prefix=str(tmp_path),
                       test_mode=True, pipeline=[dict(type='mmspike.LoadEvents')])
    with pytest.raises(ValueError, match=r'neg.npz: negative timestamp -5 at event 0'):
        ds[0]


def test_test_clips_are_deterministic():
    cfg = Config.fromfile(str(SAMPLE_CONFIG))
    val = cfg.val_dataloader.dataset
    ds = DATASETS.build(dict(val, data_root=str(SAMPLE)))
    fr = HARDVSDataset(ann_file='ann_frames_val.txt', data_root=str(SAMPLE), test_mode=True,
                       pipeline=FRAME_TEST_PIPELINE)
    for d in (ds, fr):
        outs = []
        for seed in (0, 1):
            np.random.seed(seed)
            outs.append([d[i]['inputs'] for i in range(len(d))])
        for a, b in zip(*outs):
            assert a.shape == (8, 2, 64, 64) and torch.equal(a, b)
    # events: every event of the clip is binned before resizing
    first = ds[0]['inputs']
    assert first.sum() > 0 and ds[0]['data_samples'].gt_label.item() == 0


def _small_model() -> dict:
    if HAS_ESPIKEFORMER:
        return Config.fromfile(str(SAMPLE_CONFIG)).model
    return dict(
        type='ImageClassifier',
        backbone=dict(type='mmspike.SpikingConvNet', arch='tiny', in_channels=2, T=8,
                      neuron=dict(type='MultiSpike', max_spikes=4)),
        neck=dict(type='mmspike.SpikeGlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=300, in_channels=128,
                  loss=dict(type='CrossEntropyLoss', loss_weight=1.0)))


@pytest.mark.parametrize('ann', ['ann_events_train.txt', 'ann_frames_train.txt'])
def test_raw_events_to_loss_and_prediction(ann):
    """Real events (and their rendered frames) -> [T, B, 2, H, W] -> loss, gradients, prediction."""
    from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS
    cfg = Config.fromfile(str(SAMPLE_CONFIG))
    torch.manual_seed(0)
    model_cfg = _small_model()
    model_cfg['data_preprocessor'] = cfg.data_preprocessor
    model = MMPRETRAIN_MODELS.build(model_cfg)
    if ann.startswith('ann_events'):
        pipeline = cfg.train_dataloader.dataset.pipeline
    else:
        pipeline = [dict(t, test_mode=False) if t['type'].endswith('SampleFrameClip') else t
                    for t in FRAME_TEST_PIPELINE]
    # 32x32 instead of the config's 64x64 keeps the 19M model fast on one core.
    pipeline = [dict(t, scale=37) if t['type'].endswith('ResizeClip') else
                dict(t, crop_size=32) if t['type'].endswith('CenterCropClip') else t
                for t in pipeline]
    ds = HARDVSDataset(ann_file=ann, data_root=str(SAMPLE), pipeline=pipeline)
    batch = pseudo_collate([ds[0], ds[2]])
    data = model.data_preprocessor(batch, training=True)
    assert data['inputs'].shape == (8, 2, 2, 32, 32)  # [T, B, C, H, W]
    model.train()
    losses = model(**data, mode='loss')
    loss = losses['loss']
    assert torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    grads = [p.grad for p in model.backbone.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)
    model.eval()
    with torch.no_grad():
        preds = model(**model.data_preprocessor(batch, training=False), mode='predict')
    assert len(preds) == 2
    for p, label in zip(preds, (0, 1)):
        assert p.pred_score.shape == (300,) and 0 <= int(p.pred_label) < 300
        assert int(p.gt_label) == label
        torch.testing.assert_close(p.pred_score.sum(), torch.tensor(1.0))


def test_full_config_builds():
    cfg = Config.fromfile(str(FULL_CONFIG))
    assert cfg.model.backbone.arch == '19m' and cfg.model.backbone.in_channels == 2
    assert cfg.model.backbone.T == 8 and cfg.model.head.num_classes == 300
    assert cfg.train_cfg.max_epochs == 100
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(4e-5 * 72 / 256)
    assert [t['type'] for t in cfg.test_pipeline][0] == 'mmspike.SampleFrameClip'
    assert cfg.test_pipeline[0]['test_mode'] is True
    if HAS_ESPIKEFORMER:
        from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS
        model = MMPRETRAIN_MODELS.build(dict(cfg.model, data_preprocessor=cfg.data_preprocessor))
        n = sum(p.numel() for p in model.parameters())
        # 18,987,504 with 1000 classes and 3 input channels; 300 classes: -700*361; 2 channels
        # drop one 7x7 input plane of the 32-channel stem
        assert abs(n - (18_987_504 - 700 * 361 - 32 * 49)) / n < 0.005
