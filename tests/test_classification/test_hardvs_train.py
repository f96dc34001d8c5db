"""`tools/train.py` on configs/hardvs/e-spikeformer-19m_hardvs_sample.py: the real-event sample,
end to end (about 20 s on one core)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

import mmspike.classification  # noqa: F401
from mmspike.registry import MODELS

pytestmark = pytest.mark.subprocess  # every test here runs a fresh Python process

REPO = Path(__file__).resolve().parents[2]
SAMPLE_CONFIG = REPO / 'configs' / 'hardvs' / 'e-spikeformer-19m_hardvs_sample.py'
HAS_ESPIKEFORMER = 'ESpikeFormer' in MODELS.module_dict


@pytest.mark.skipif(not HAS_ESPIKEFORMER, reason='mmspike.ESpikeFormer is not available yet')
def test_train_sample_config_end_to_end(tmp_path):
    """`tools/train.py` on the sample config: real .npz events, 2 epochs, validation, checkpoint."""
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get('OMP_NUM_THREADS', '1'))
    proc = subprocess.run(
        [sys.executable, 'tools/train.py', str(SAMPLE_CONFIG), '--work-dir', str(tmp_path)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert 'Epoch(train) [2][2/2]' in log and 'accuracy/top1' in log
    ckpt = tmp_path / 'epoch_2.pth'
    assert ckpt.is_file() and ckpt.stat().st_size > 19e6 * 4  # 19M fp32 weights (+ AdamW state)
    ckpt.unlink()  # ~225 MB; pytest keeps recent tmp dirs around
