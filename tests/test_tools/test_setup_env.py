"""scripts/setup_env.sh resolves a CPU or CUDA install plan (issue 13); its dry run prints the plan
and changes nothing. The CPU plan is the pinned stack and the cached CPU mmcv wheel of before."""
import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.subprocess  # every test here runs a fresh Python process

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / 'scripts' / 'setup_env.sh'


def _pin(name):
    for line in (ROOT / 'requirements' / 'constraints.txt').read_text().splitlines():
        if line.startswith(name + '=='):
            return line.split('==')[1]
    raise AssertionError(f'{name} is not pinned')


def _plan(tmp_path, cuda=None, args=('--dry-run', ), extra_env=None):
    env = dict(os.environ, MMSPIKE_VENV=str(tmp_path / 'venv'),
               MMSPIKE_WHEEL_DIR=str(tmp_path / 'wheels'))
    env.pop('MMSPIKE_CUDA', None)
    env.pop('TORCH_CUDA_ARCH_LIST', None)
    if cuda is not None:
        env['MMSPIKE_CUDA'] = cuda
    env.update(extra_env or {})
    proc = subprocess.run(['bash', str(SCRIPT), *args], env=env, capture_output=True, text=True,
                          timeout=60)
    plan = dict(line[len('[setup_env] plan: '):].split('=', 1)
                for line in proc.stdout.splitlines() if line.startswith('[setup_env] plan: '))
    assert not (tmp_path / 'venv').exists() and not (tmp_path / 'wheels').exists()
    return proc, plan


def test_cuda_plan(tmp_path):
    torch_v, tv_v, mmcv_v = _pin('torch'), _pin('torchvision'), _pin('mmcv')
    proc, plan = _plan(tmp_path, '12.6')
    assert proc.returncode == 0, proc.stderr
    assert plan['target'] == 'cuda 12.6 (MMSPIKE_CUDA)'
    # the CPU pin's torch version, built for CUDA 12.6, from PyTorch's index
    assert plan['torch'] == (f'torch=={torch_v}+cu126 torchvision=={tv_v}+cu126 from '
                             'https://download.pytorch.org/whl/cu126 (its CUDA runtime wheels '
                             'from PyPI)')
    assert plan['spconv'] == f"spconv-cu126=={_pin('spconv')}"
    wheels = tmp_path / 'wheels' / f'torch{torch_v}-cu126-sm80-sm86-sm89-sm90ptx'
    assert plan['mmcv'] == (f"{mmcv_v} with CUDA ops (MMCV_WITH_OPS=1 FORCE_CUDA=1 "
                            f"TORCH_CUDA_ARCH_LIST='8.0;8.6;8.9;9.0+PTX', -std=c++20), wheel "
                            f'cached in {wheels}')
    # the CPU spconv never comes along: only the cu126 build is installed
    assert 'requirements/spconv.txt' not in plan['install'] and \
        f'{wheels}/mmcv-{mmcv_v}-*.whl' in plan['install']
    assert 'dry run: nothing installed' in proc.stdout

    _, plan = _plan(tmp_path, '12.8', extra_env={'TORCH_CUDA_ARCH_LIST': '9.0'})
    assert plan['spconv'].startswith('spconv-cu126==')  # newest spconv wheel of CUDA 12
    assert f'torch{torch_v}-cu128-sm90/' in plan['install']
    _, plan = _plan(tmp_path, '13.0')  # PyPI's own torch build is CUDA 13.0; no spconv-cu13x
    assert plan['torch'] == (f'torch=={torch_v} torchvision=={tv_v} from PyPI (its build is '
                             'CUDA 13.0)')
    assert plan['spconv'].startswith('none (PyPI has no spconv-cu wheel for CUDA 13.0')


def test_cpu_plan_is_the_pinned_stack(tmp_path):
    for cuda in ('cpu', None):  # None: this CI machine lists no GPU
        proc, plan = _plan(tmp_path, cuda, args=(), extra_env={'MMSPIKE_SETUP_DRY_RUN': '1'})
        assert proc.returncode == 0, proc.stderr
        assert plan['target'].startswith('cpu (')
        assert plan['torch'] == (f"torch=={_pin('torch')} torchvision=={_pin('torchvision')} "
                                 'from PyPI (requirements/constraints.txt)')
        # the cached CPU wheel keeps its name and place (CI's cache)
        assert plan['mmcv'] == (f"{_pin('mmcv')} with CPU ops, wheel cached as "
                                f"{tmp_path / 'wheels'}/mmcv-{_pin('mmcv')}-*.whl")
        assert plan['spconv'] == f"spconv=={_pin('spconv')} (requirements/spconv.txt)"
        assert plan['install'].endswith(
            '-r requirements/tests.txt -r requirements/spconv.txt -e .')
    runtime = (ROOT / 'requirements' / 'runtime.txt').read_text()
    assert 'spconv' not in runtime  # an extra: spconv and spconv-cuXY share an import name


def test_bad_cuda_version_is_named(tmp_path):
    proc, _ = _plan(tmp_path, '12')
    assert proc.returncode == 1 and "MMSPIKE_CUDA must be 'cpu' or X.Y (e.g. 12.6), got '12'" \
        in proc.stderr
    proc, _ = _plan(tmp_path, 'cpu', args=('--dry', ))
    assert proc.returncode == 1 and "unknown argument '--dry'" in proc.stderr


def test_cpu_stamp_formula_unchanged(tmp_path):
    """An environment stamped with the hash of the requirement files, setup.py and the script (the
    CPU formula CI's cache relies on) is up to date: nothing printed but that, nothing run."""
    import hashlib
    venv = tmp_path / 'venv'
    (venv / 'bin').mkdir(parents=True)
    (venv / 'bin' / 'python').write_text('#!/bin/sh\nexit 1\n')  # never run when up to date
    (venv / 'bin' / 'python').chmod(0o755)
    files = [ROOT / 'requirements' / 'constraints.txt',
             *sorted((ROOT / 'requirements').glob('*.txt')), ROOT / 'setup.py', SCRIPT]
    digest = hashlib.sha256(b''.join(f.read_bytes() for f in files)).hexdigest()
    (venv / '.mmspike-stamp').write_text(digest + '\n')
    env = dict(os.environ, MMSPIKE_VENV=str(venv), MMSPIKE_CUDA='cpu')
    proc = subprocess.run(['bash', str(SCRIPT)], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f'[setup_env] environment up to date ({venv})\n'


def test_refuses_a_new_venv_without_the_disk_space_it_needs(tmp_path):
    """Too little free disk for a new venv stops the script before it creates anything, with an error
    that names the folder and the figures (CI once died half-installed on 'No space left')."""
    env = dict(os.environ, MMSPIKE_VENV=str(tmp_path / 'venv'), MMSPIKE_CUDA='cpu',
               MMSPIKE_WHEEL_DIR=str(tmp_path / 'wheels'), MMSPIKE_VENV_MIN_FREE_MIB=str(2**40))
    proc = subprocess.run(['bash', str(SCRIPT)], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1
    assert f'a new {tmp_path / "venv"} needs about {2**40} MiB of free disk' in proc.stderr
    free = int(proc.stderr.split('df reports ')[1].split(' MiB free')[0])
    assert 0 <= free < 2**40
    assert not (tmp_path / 'venv').exists() and not (tmp_path / 'wheels').exists()
