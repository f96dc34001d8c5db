"""tools/model_converters/spike_mae2backbone.py refuses to overwrite its source and refuses a
checkpoint that is not a spike-MAE one (issue 17 item 6)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.subprocess  # every test here runs a fresh Python process

ROOT = Path(__file__).resolve().parents[2]
TOOL = 'tools/model_converters/spike_mae2backbone.py'


def run(*args):
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, TOOL, *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def classifier_checkpoint(path):
    """A real fine-tuned-classifier-like checkpoint: an ESpikeFormer under ``backbone.`` and a
    linear head, no spike-MAE decoder."""
    from mmspike.models.backbones import ESpikeFormer
    state = {f'backbone.{k}': v for k, v in ESpikeFormer(arch='2m').state_dict().items()}
    state['head.fc.weight'] = torch.zeros(10, 128)
    torch.save({'state_dict': state, 'meta': {}}, path)
    return path


def test_refuses_to_overwrite_its_source(tmp_path):
    src = classifier_checkpoint(tmp_path / 'src.pth')
    before = src.read_bytes()
    for dst in (src, tmp_path / '.' / 'src.pth'):
        proc = run(src, dst)
        assert proc.returncode != 0 and 'refusing to overwrite the source checkpoint' in \
            proc.stderr, proc.stderr[-2000:]
    assert src.read_bytes() == before


def test_refuses_a_checkpoint_that_is_not_spike_mae(tmp_path):
    src = classifier_checkpoint(tmp_path / 'cls.pth')
    proc = run(src, tmp_path / 'out.pth')
    assert proc.returncode != 0, proc.stdout[-2000:]
    assert 'is not a spike-MAE checkpoint' in proc.stderr and "'encoder_norm.weight'" in \
        proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / 'out.pth').exists()
