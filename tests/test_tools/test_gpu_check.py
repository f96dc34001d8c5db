"""tools/gpu_check.sh --dry-run: the device check's code paths run on the CPU at tiny sizes and pass
(the GPU run itself needs a CUDA machine; issue 13)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.subprocess
def test_gpu_check_dry_run(tmp_path):
    out = tmp_path / 'gpu_check.json'
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS='1')
    proc = subprocess.run(['bash', str(ROOT / 'tools' / 'gpu_check.sh'), '--dry-run', '--json',
                           str(out)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    checks = result['checks']
    assert result['dry_run'] and list(checks) == [
        'kernels', 'neurons', 'fast_plain_10m', 'amp_10m', 'amp_detector', 'ssc', 'benchmark']
    try:
        import spconv.pytorch  # noqa: F401
        expected = {name: 'PASS' for name in checks}
    except ImportError:
        expected = dict({name: 'PASS' for name in checks}, ssc='SKIP')
    assert {k: v['status'] for k, v in checks.items()} == expected
    assert checks['kernels']['variants_checked'] == 189
    assert checks['amp_10m']['step1_bitwise'] and checks['amp_10m']['fused_spike_convs'] >= 8
    bench = checks['benchmark']
    assert all(bench[f'{m}_{p}_img_per_s'] > 0 for m in ('fast', 'plain') for p in ('fp32', 'bf16'))
    assert bench['neuron_fwd_bwd_gb_per_s'] > 0 and bench['copy_gb_per_s'] > 0
    for name in checks:
        assert f'CHECK {name}: ' in proc.stdout

