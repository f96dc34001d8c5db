"""SpikeRunner through the real CLIs: wrong checkpoints stop the run, bad files are named, saves
are atomic and resume falls back to the newest readable checkpoint (issue 17, items 1, 4 and 6)."""
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.subprocess  # every test here runs a fresh Python process

ROOT = Path(__file__).resolve().parents[2]
CONFIG = 'configs/mmpretrain/spiking-convnet_digits.py'
# 2 short epochs of the digits demo, a checkpoint after each
SHORT = ['train_cfg.max_epochs=2', 'train_cfg.val_interval=10',
         'default_hooks.checkpoint.interval=1', 'param_scheduler.0.T_max=3',
         'default_hooks.logger.interval=50']


def run(args, extra_path=None, timeout=600):
    env = dict(os.environ, OMP_NUM_THREADS='1',
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), extra_path])))
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def ok(proc):
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc.stdout + proc.stderr


def failed(proc):
    assert proc.returncode != 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stderr


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A work dir after 2 epochs, checkpoints epoch_1.pth and epoch_2.pth."""
    work = tmp_path_factory.mktemp('trained')
    ok(run(['tools/train.py', CONFIG, '--work-dir', str(work), '--cfg-options', *SHORT]))
    assert (work / 'epoch_1.pth').is_file() and (work / 'epoch_2.pth').is_file()
    assert not [p for p in work.iterdir() if '.tmp' in p.name]  # no temporary file left
    return work


@pytest.fixture(scope='module')
def other_model_ckpt(tmp_path_factory):
    """A checkpoint of another model: the 'small' SpikingConvNet (wider layers, extra blocks)."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    import mmspike.models  # noqa: F401
    cfg = Config.fromfile(str(ROOT / CONFIG))
    cfg.model.backbone.arch = 'small'
    cfg.model.head.in_channels = 256
    init_default_scope('mmpretrain')
    model = MODELS.build(cfg.model)
    path = tmp_path_factory.mktemp('other') / 'small.pth'
    torch.save({'meta': {'epoch': 1, 'iter': 1}, 'state_dict': model.state_dict()}, path)
    return path


# ------------------------------------------------------------------ item 1: wrong checkpoints
def test_test_py_refuses_checkpoint_of_another_model(other_model_ckpt, tmp_path):
    err = failed(run(['tools/test.py', CONFIG, str(other_model_ckpt), '--work-dir', str(tmp_path)]))
    assert 'does not match the model of this config' in err, err[-3000:]
    # the first mismatching keys are named, with both shapes
    assert 'backbone.stem.conv.weight: checkpoint (64, 1, 3, 3) vs model (32, 1, 3, 3)' \
        in err, err[-3000:]
    assert 'unexpected (not in the model)' in err and 'load_strict=False' in err
    assert 'accuracy/top1' not in err


def test_load_from_refuses_checkpoint_of_another_model(other_model_ckpt, tmp_path):
    err = failed(run(['tools/train.py', CONFIG, '--work-dir', str(tmp_path), '--cfg-options',
                      *SHORT, f'load_from={other_model_ckpt}']))
    assert 'does not match the model of this config' in err, err[-3000:]
    assert not list(tmp_path.glob('epoch_*.pth'))  # it did not train on


def test_partial_load_is_an_explicit_opt_out(other_model_ckpt, tmp_path):
    out = ok(run(['tools/test.py', CONFIG, str(other_model_ckpt), '--work-dir', str(tmp_path),
                  '--allow-partial-load']))
    assert 'partial loading allowed' in out and 'size mismatch' in out


# ------------------------------------------------------------------ item 6: unreadable files
@pytest.mark.parametrize('kind,expected', [
    ('empty', 'is empty (0 bytes): not a checkpoint'),
    ('random', 'is not a PyTorch checkpoint'),
    ('truncated', 'is a truncated or corrupted checkpoint archive'),
])
def test_unreadable_checkpoint_is_named(trained, tmp_path, kind, expected):
    bad = tmp_path / f'{kind}.pth'
    data = (trained / 'epoch_2.pth').read_bytes()
    bad.write_bytes({'empty': b'', 'random': os.urandom(4096),
                     'truncated': data[:len(data) // 2]}[kind])
    err = failed(run(['tools/test.py', CONFIG, str(bad), '--work-dir', str(tmp_path)]))
    assert expected in err and str(bad) in err, err[-3000:]
    assert 'weights_only=False' not in err and 'weights_only` set to `False' not in err


def test_resume_from_missing_checkpoint_is_an_error(tmp_path):
    err = failed(run(['tools/train.py', CONFIG, '--work-dir', str(tmp_path), '--resume',
                      str(tmp_path / 'nope.pth'), '--cfg-options', *SHORT]))
    assert 'resume: checkpoint not found' in err and 'nope.pth' in err, err[-3000:]


def test_resume_in_empty_work_dir_says_so(tmp_path):
    out = ok(run(['tools/train.py', CONFIG, '--work-dir', str(tmp_path), '--resume',
                  '--cfg-options', *SHORT, 'train_cfg.max_epochs=1']))
    assert 'no checkpoint in' in out and 'training starts from scratch' in out, out[-3000:]
    assert 'resumed from None' not in out


# ------------------------------------------------------------------ item 4: lost work
def test_resume_skips_a_truncated_checkpoint(trained, tmp_path):
    work = tmp_path / 'work'
    work.mkdir()
    for name in ('epoch_1.pth', 'epoch_2.pth', 'last_checkpoint'):
        data = (trained / name).read_bytes()
        if name == 'epoch_2.pth':  # what a kill during an in-place write leaves
            data = data[:len(data) // 3]
        (work / name).write_bytes(data.replace(str(trained).encode(), str(work).encode())
                                  if name == 'last_checkpoint' else data)
    out = ok(run(['tools/train.py', CONFIG, '--work-dir', str(work), '--resume',
                  '--cfg-options', *SHORT, 'train_cfg.max_epochs=3']))
    assert f'skipping {work / "epoch_2.pth"}' in out and 'truncated' in out, out[-3000:]
    assert f'resuming from {work / "epoch_1.pth"}, the newest readable checkpoint' in out
    assert 'resumed epoch: 1' in out
    assert (work / 'epoch_3.pth').is_file()


def test_resume_with_only_unreadable_checkpoints_is_an_error(tmp_path):
    (tmp_path / 'epoch_1.pth').write_bytes(b'')
    err = failed(run(['tools/train.py', CONFIG, '--work-dir', str(tmp_path), '--resume',
                      '--cfg-options', *SHORT]))
    assert 'no readable checkpoint in' in err and 'is empty (0 bytes)' in err, err[-3000:]


KILL_HOOK = '''
import os, signal
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class KillWhileSaving(Hook):
    """SIGKILL the process while it saves the checkpoint of epoch ``epoch``."""

    def __init__(self, epoch):
        self.epoch = epoch

    def before_save_checkpoint(self, runner, checkpoint):
        if checkpoint['meta']['epoch'] == self.epoch:
            os.kill(os.getpid(), signal.SIGKILL)
'''


def test_kill_while_saving_with_max_keep_1_leaves_a_resumable_checkpoint(tmp_path):
    """MMEngine deletes the old checkpoint before writing the new one: with max_keep_ckpts=1 a
    kill during that write used to leave nothing to resume."""
    (tmp_path / 'kill_hook.py').write_text(textwrap.dedent(KILL_HOOK))
    config = tmp_path / 'kill_cfg.py'
    config.write_text(f"_base_ = ['{ROOT / CONFIG}']\n"
                      "custom_imports = dict(imports=['mmspike.classification', "
                      "'kill_hook'], allow_failed_imports=False)\n"
                      "custom_hooks = [dict(type='KillWhileSaving', epoch=2)]\n"
                      "default_hooks = dict(checkpoint=dict(max_keep_ckpts=1))\n")
    work = tmp_path / 'work'
    proc = run(['tools/train.py', str(config), '--work-dir', str(work), '--cfg-options', *SHORT],
               extra_path=str(tmp_path))
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert (work / 'epoch_1.pth').is_file(), sorted(p.name for p in work.iterdir())
    out = ok(run(['tools/train.py', CONFIG, '--work-dir', str(work), '--resume',
                  '--cfg-options', *SHORT, 'default_hooks.checkpoint.max_keep_ckpts=1']))
    assert 'resumed epoch: 1' in out, out[-3000:]
    assert (work / 'epoch_2.pth').is_file() and not (work / 'epoch_1.pth').exists()
