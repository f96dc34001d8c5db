"""The point-cloud sample configs through tools/train.py (one iteration, then validation) and
tools/test.py: E3DSNN-T on two real ModelNet40 shapes (top-1) and the E-3DSNN U-Net on the real
SemanticKITTI scan excerpt (mIoU by mmdet3d's SegMetric)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mmspike.models.layers.spconv_support import spconv_available

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.subprocess,
              pytest.mark.skipif(not spconv_available(), reason='spconv is not installed')]


def run(args):
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc.stdout + proc.stderr


def test_modelnet40_sample_trains_then_tests(tmp_path):
    CONFIG = 'configs/points/e3dsnn-t_modelnet40_sample.py'
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


def test_semantickitti_sample_trains_then_tests(tmp_path):
    pytest.importorskip('mmdet3d', reason='mmdet3d (requirements/points.txt) is not installed')
    CONFIG = 'configs/points/e3dsnn_semantickitti_sample.py'
    work = tmp_path / 'work'
    log = run(['tools/train.py', CONFIG, '--work-dir', str(work)])
    assert 'Epoch(train) [1][1/1]' in log and 'loss_sem_seg:' in log, log[-3000:]
    assert 'Epoch(val) [1][1/1]' in log and 'miou:' in log, log[-3000:]
    assert (work / 'epoch_1.pth').is_file()
    out = tmp_path / 'metrics.json'
    run(['tools/test.py', CONFIG, str(work / 'epoch_1.pth'), '--work-dir', str(work),
         '--out', str(out)])
    metrics = json.loads(out.read_text())
    # the 50 points: 25 building, 17 vegetation, 3 trunk, 2 pole, 3 ignored (unlabeled,
    # other-structure); a class in neither the labels nor the prediction has no IoU (NaN)
    present = ('building', 'vegetation', 'trunck', 'pole')
    assert all(0.0 <= metrics[c] <= 1.0 for c in present), metrics
    ious = [v for k, v in metrics.items() if k not in ('miou', 'acc', 'acc_cls') and v == v]
    assert len(ious) >= len(present)
    assert abs(metrics['miou'] - sum(ious) / len(ious)) < 1e-3, metrics
