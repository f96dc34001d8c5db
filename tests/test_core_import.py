"""The core (neurons, kernels, layers, backbones, necks, engine, analysis, data readers) needs only
torch and mmengine: it imports, builds and runs a model with every OpenMMLab task library, mmcv,
spconv and Triton made unimportable. Each task package needs only its own library."""
import subprocess
import sys
import textwrap

import pytest

BLOCKED = ('mmcv', 'mmdet', 'mmseg', 'mmpretrain', 'spconv', 'triton')

# ``sys.modules[name] = None`` is how Python marks a module unimportable: ``import name`` raises
# ImportError and ``importlib.util.find_spec(name)`` answers None, as for a library not installed.
PRELUDE = textwrap.dedent(f"""
    import sys
    for name in {BLOCKED!r}:
        sys.modules[name] = None
""")


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-c', PRELUDE + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.subprocess
def test_core_imports_and_runs_without_task_libraries():
    proc = _run("""
        import torch
        import mmspike, mmspike.models, mmspike.engine, mmspike.analysis, mmspike.datasets
        from mmspike.registry import MODELS
        from mmspike.models.neurons import MultiSpike
        assert 'ESpikeFormer' in MODELS.module_dict and 'SpikeFPN' in MODELS.module_dict
        backbone = MODELS.build(dict(type='ESpikeFormer', arch='2m', out_indices=(3, ), T=1))
        neck = MODELS.build(dict(type='SpikeFPN', in_channels=[128], out_channels=8,
                                 num_outs=1, norm_cfg=dict(type='BN')))
        feats = backbone(torch.randn(1, 3, 32, 32))
        out = neck(feats)
        assert out[0].shape[:2] == (1, 8), out[0].shape
        out[0].sum().backward()
        loaded = [m for m in sys.modules if m.split('.')[0] in {blocked!r} and sys.modules[m]]
        assert not loaded, loaded
        print('CORE OK')
    """.replace('{blocked!r}', repr(BLOCKED)))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'CORE OK' in proc.stdout


TASKS = {'mmspike.classification': 'mmpretrain', 'mmspike.detection': 'mmdet',
         'mmspike.segmentation': 'mmseg'}


@pytest.mark.subprocess
@pytest.mark.parametrize('package', sorted(TASKS))
def test_task_package_needs_only_its_own_library(package):
    """Each task package imports with the other task libraries (and spconv) unimportable, and
    fails naming its own library when that one is missing."""
    others = [lib for pkg, lib in TASKS.items() if pkg != package] + ['spconv']
    code = f"""
        import sys
        for name in {others!r}:
            sys.modules[name] = None
        import {package}
        print('TASK OK')
    """
    proc = subprocess.run([sys.executable, '-c', textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0 and 'TASK OK' in proc.stdout, proc.stderr[-3000:]

    proc = _run(f'import {package}')
    assert proc.returncode != 0
    assert TASKS[package] in proc.stderr.splitlines()[-1], proc.stderr[-2000:]
