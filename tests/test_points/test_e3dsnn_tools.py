"""configs/points/e3dsnn-t_modelnet40_sample.py through tools/train.py (one iteration on two real
ModelNet40 shapes, then validation) and tools/test.py (the two held-out shapes)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mmspike.models.layers.spconv_support import spconv_available

ROOT = Path(__file__).resolve().parents[2]
CONFIG = 'configs/points/e3dsnn-t_modelnet40_sample.py'

pytestmark = [pytest.mark.slow, pytest.mark.subprocess,
              pytest.mark.skipif(not spconv_available(), reason='spconv is not installed')]


def run(args):
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc.stdout + proc.stderr


def test_train_one_iteration_then_test(tmp_path):
    work = tmp_path / 'work'
    log = run(['tools/train.py', CONFIG, '--work-dir', str(work)])
    assert 'Epoch(train) [1][1/1]' in log and 'loss:' in log, log[-3000:]
    assert 'Epoch(val) [1][1/1]' in log and 'accuracy/top1' in log, log[-3000:]
    assert (work / 'epoch_1.pth').is_file()
    out = tmp_path / 'metrics.json'
    log = run(['tools/test.py', CONFIG, str(work / 'epoch_1.pth'), '--work-dir', str(work),
               '--out', str(out)])
    metrics = json.loads(out.read_text())
    # two test shapes: the top-1 is 0, 50 or 100 percent
    assert metrics['accuracy/top1'] in (0.0, 50.0, 100.0), metrics
