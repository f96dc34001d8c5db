"""tools/train.py and tools/test.py on the demo config: train, resume, test, distributed, bad input.

These run the real CLIs in subprocesses, as a user would.
"""
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.subprocess  # every test here runs a fresh Python process

ROOT = Path(__file__).resolve().parents[2]
CONFIG = 'configs/mmpretrain/spiking-convnet_digits.py'
# keep the runs short: 2 epochs (~90 iterations of a tiny model)
SHORT = ['train_cfg.max_epochs=2', 'train_cfg.val_interval=2', 'default_hooks.checkpoint.interval=1',
         'param_scheduler.0.T_max=3', 'default_hooks.logger.interval=10']


def run(args, timeout=600, **kwargs):
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(ROOT))
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout, **kwargs)
    return proc


def check(proc):
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


def test_train_resume_and_test(tmp_path):
    work = tmp_path / 'work'
    check(run([sys.executable, 'tools/train.py', CONFIG, '--work-dir', str(work),
               '--cfg-options', *SHORT]))
    assert (work / 'epoch_2.pth').is_file()
    # the checkpoint loads with weights_only=True (the safe globals mmspike registers explicitly)
    from mmspike.engine.checkpoint import register_checkpoint_safe_globals
    register_checkpoint_safe_globals()
    ckpt = torch.load(work / 'epoch_2.pth', map_location='cpu', weights_only=True)
    assert ckpt['meta']['epoch'] == 2

    # resume continues at epoch 3 from the saved state instead of starting over
    proc = check(run([sys.executable, 'tools/train.py', CONFIG, '--work-dir', str(work),
                      '--resume', '--cfg-options', *SHORT, 'train_cfg.max_epochs=3']))
    log = proc.stdout + proc.stderr
    assert 'resumed epoch: 2' in log, log[-3000:]
    assert 'Epoch(train) [1]' not in log and 'Epoch(train)   [1]' not in log
    assert (work / 'epoch_3.pth').is_file()

    out = tmp_path / 'metrics.json'
    check(run([sys.executable, 'tools/test.py', CONFIG, str(work / 'epoch_3.pth'),
               '--work-dir', str(work), '--out', str(out)]))
    metrics = json.loads(out.read_text())
    assert 0.5 < metrics['accuracy/top1'] <= 100.0  # learned something after 3 epochs


def test_untrusted_checkpoint_is_refused(tmp_path):
    bad = tmp_path / 'bad.pth'
    # a pickle that would construct an arbitrary object when loaded without weights_only
    torch.save({'state_dict': {}, 'meta': {'payload': pickle.PicklingError('x')}}, bad)
    proc = run([sys.executable, 'tools/test.py', CONFIG, str(bad), '--work-dir', str(tmp_path)])
    assert proc.returncode != 0
    assert 'Unsupported global' in proc.stderr and 'PicklingError' in proc.stderr, proc.stderr[-3000:]


def test_missing_checkpoint_is_named(tmp_path):
    proc = run([sys.executable, 'tools/test.py', CONFIG, str(tmp_path / 'nope.pth')])
    assert proc.returncode != 0 and 'checkpoint not found' in proc.stderr


def test_two_process_distributed_training(tmp_path):
    work = tmp_path / 'dist'
    proc = check(run([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
                      '--master_port=29517', 'tools/train.py', CONFIG, '--launcher', 'pytorch',
                      '--work-dir', str(work), '--cfg-options', 'train_cfg.max_epochs=1',
                      'train_cfg.val_interval=1', 'param_scheduler.0.T_max=1']))
    log = proc.stdout + proc.stderr
    assert 'Distributed training: True' in log, log[-3000:]
    assert (work / 'epoch_1.pth').is_file()
    # 1347 training images / (2 processes x batch 32) -> 22 iterations per epoch and process
    assert 'Epoch(train) [1][20/22]' in log, log[-3000:]


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the CPU refusal of --amp')
def test_amp_on_cpu_is_refused_clearly(tmp_path):
    proc = run([sys.executable, 'tools/train.py', CONFIG, '--amp', '--work-dir', str(tmp_path)])
    assert proc.returncode != 0 and '--amp needs a GPU' in proc.stderr
