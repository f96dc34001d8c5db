"""Importing mmspike patches no third-party code; apply_patches() does, explicitly and idempotently."""
import subprocess
import sys
import textwrap

import pytest

CODE = textwrap.dedent("""
    import io, torch
    from mmengine.logging.history_buffer import HistoryBuffer
    import spconv.pytorch.ops as ops
    import numpy as np

    def mmspike_globals():  # torch itself adds DTensor classes when torch.distributed loads
        return set(torch.serialization.get_safe_globals()) & {HistoryBuffer, np.ndarray, np.dtype}

    before = (HistoryBuffer.__dict__.get('__getstate__'), ops.indice_conv,
              ops.indice_conv_backward, ops.get_current_stream, mmspike_globals())

    import mmspike, mmspike.models, mmspike.engine
    from mmspike.registry import MODELS
    MODELS.build(dict(type='ESpikeFormer', arch='2m', T=1))  # building a dense model: no patch
    after = (HistoryBuffer.__dict__.get('__getstate__'), ops.indice_conv,
             ops.indice_conv_backward, ops.get_current_stream, mmspike_globals())
    assert before == after, 'importing mmspike changed third-party code'
    assert after[4] == set()

    # plain MMEngine: a message hub's buffer is not weights-only loadable
    buf = HistoryBuffer()
    buf.update(1.0); buf.update(2.0)
    f = io.BytesIO(); torch.save({'b': buf}, f)
    try:
        torch.load(io.BytesIO(f.getvalue()), weights_only=True)
        raise AssertionError('plain MMEngine buffer loaded weights-only')
    except Exception as e:
        assert 'getattr' in str(e) or 'HistoryBuffer' in str(e), e

    from mmspike.engine import apply_patches
    assert apply_patches() == {'history_buffer_pickling': True, 'spconv_cpu_support': True}
    patched = (HistoryBuffer.__getstate__, ops.indice_conv, ops.indice_conv_backward,
               ops.get_current_stream, set(torch.serialization.get_safe_globals()))
    assert mmspike_globals() == {HistoryBuffer, np.ndarray, np.dtype}
    assert all(p is not b for p, b in zip(patched[:3], before[:3]))
    apply_patches()  # idempotent: nothing wrapped twice, nothing added
    again = (HistoryBuffer.__getstate__, ops.indice_conv, ops.indice_conv_backward,
             ops.get_current_stream, set(torch.serialization.get_safe_globals()))
    assert again == patched
    f = io.BytesIO(); torch.save({'b': buf}, f)
    loaded = torch.load(io.BytesIO(f.getvalue()), weights_only=True)['b']
    assert loaded.mean() == 1.5 and loaded.max() == 2.0  # statistics methods restored
    print('PATCHES OK')
""")


@pytest.mark.subprocess
def test_import_patches_nothing_and_apply_patches_is_idempotent():
    pytest.importorskip('spconv.pytorch')
    proc = subprocess.run([sys.executable, '-c', CODE], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'PATCHES OK' in proc.stdout
