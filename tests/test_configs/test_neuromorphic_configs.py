"""The CIFAR10-DVS / DVS128 Gesture configs: T, classes and input channels agree between the
model, the data preprocessor and the pipelines, and the sample configs differ from them only in
data, T and schedule (their train/evaluate runs are in tests/test_tools)."""
from pathlib import Path

import pytest
from mmengine import Config

CONFIGS = Path(__file__).resolve().parents[2] / 'configs' / 'neuromorphic'


def frames_bins(pipeline):
    return [t['num_bins'] for t in pipeline if t['type'] == 'mmspike.EventsToFrames']


@pytest.mark.parametrize('name,num_classes,dataset,T', [
    ('spikformer-v2_cifar10-dvs', 10, 'mmspike.CIFAR10DVSDataset', 16),
    ('spikformer-v2_dvs-gesture', 11, 'mmspike.DVSGestureDataset', 16),
    ('spikformer-v2_cifar10-dvs_sample', 10, 'mmspike.CIFAR10DVSDataset', 4),
    ('spikformer-v2_dvs-gesture_sample', 11, 'mmspike.DVSGestureDataset', 4),
])
def test_config_is_consistent(name, num_classes, dataset, T):
    cfg = Config.fromfile(str(CONFIGS / f'{name}.py'))
    assert cfg.custom_imports == dict(imports=['mmspike.classification'],
                                      allow_failed_imports=False)
    backbone = cfg.model.backbone
    assert backbone.type == 'mmspike.SpikformerV2' and backbone.in_channels == 2
    assert backbone.T == T and dict(backbone.arch) == dict(embed_dims=256, depth=2, num_heads=16)
    assert cfg.model.head.num_classes == cfg.data_preprocessor.num_classes == num_classes
    assert cfg.model.head.in_channels == 256
    for loader, split in ((cfg.train_dataloader, 'train'), (cfg.val_dataloader, 'test'),
                          (cfg.test_dataloader, 'test')):
        ds = loader.dataset
        assert ds.type == dataset and ds.split == split
        assert frames_bins(ds.pipeline) == [T]
        assert ds.pipeline[0]['type'] == 'mmspike.LoadEventClip'
        assert ds.pipeline[-1]['type'] == 'mmspike.PackEventInputs'
    flips = [t for t in cfg.val_dataloader.dataset.pipeline if 'Flip' in t['type']]
    assert not flips  # evaluation is deterministic
