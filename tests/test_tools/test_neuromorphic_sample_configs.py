"""tools/train.py on the CIFAR10-DVS and DVS128 Gesture sample configs: real events in the
release layouts (tests/data/{cifar10_dvs,dvs_gesture}_sample), one training iteration, then
validation on the held-out files/clips, and a checkpoint."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / 'configs' / 'neuromorphic'


@pytest.mark.subprocess
@pytest.mark.slow
@pytest.mark.parametrize('name,num_val', [('spikformer-v2_cifar10-dvs_sample', 2),
                                          ('spikformer-v2_dvs-gesture_sample', 3)])
def test_sample_config_trains_and_evaluates(tmp_path, name, num_val):
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, 'tools/train.py', str(CONFIGS / f'{name}.py'), '--work-dir',
         str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert 'Iter(train) [1/1]' in log and 'Saving checkpoint at 1 iterations' in log, log[-3000:]
    loss = float(re.search(r'Iter\(train\) \[1/1\].*? loss: ([0-9.]+)', log).group(1))
    assert 0.0 < loss < 10.0
    # validation over the num_val held-out samples: top-1 is a multiple of 100 / num_val
    top1 = float(re.search(r'accuracy/top1: ([0-9.]+)', log).group(1))
    assert abs(top1 * num_val / 100 - round(top1 * num_val / 100)) < 1e-3, top1
    assert (tmp_path / 'iter_1.pth').is_file()
