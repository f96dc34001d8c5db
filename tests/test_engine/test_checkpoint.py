"""Weights-only checkpoint loading: the plain-data classes MMEngine writes load, anything else is
refused by name."""
import pathlib

import pytest
import torch
from mmengine.config import Config, ConfigDict

from mmspike.engine import CheckpointError, load_checkpoint_file


def test_dataset_metainfo_from_a_config_loads(tmp_path):
    # A config's `metainfo=dict(...)` reaches the runner as a ConfigDict and the checkpoint's
    # meta['dataset_meta'] keeps that type.
    cfg = Config(dict(metainfo=dict(classes=('car', 'person'), palette=[(1, 2, 3), (4, 5, 6)])))
    assert isinstance(cfg.metainfo, ConfigDict)
    path = tmp_path / 'ckpt.pth'
    torch.save({'state_dict': {'w': torch.ones(2)}, 'meta': {'dataset_meta': cfg.metainfo}}, path)
    ckpt = load_checkpoint_file(str(path))
    assert ckpt['meta']['dataset_meta']['classes'] == ('car', 'person')
    assert torch.equal(ckpt['state_dict']['w'], torch.ones(2))


class Payload:
    pass


@pytest.mark.parametrize('payload, name', [
    (pathlib.PurePosixPath('/etc'), 'pathlib.PurePosixPath'),
    (Payload(), 'Payload'),
])
def test_other_classes_are_refused_by_name(tmp_path, payload, name):
    path = tmp_path / 'ckpt.pth'
    torch.save({'meta': payload}, path)
    with pytest.raises(CheckpointError, match=name):
        load_checkpoint_file(str(path))
