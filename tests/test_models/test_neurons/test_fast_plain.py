"""The fast execution path of the neurons equals the plain path bit for bit; the switch, the
kernel backends (C, Triton through its interpreter, torch ops) and their fallbacks."""
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from mmspike.models import execution_mode, get_execution_mode, set_execution_mode
from mmspike.models.neurons import (ILIF, IntegerNeuron, MultiSpike, kernels, set_finite_check,
                                    set_kernel_backend)

# Boundaries (0, D, ties k + 0.5, -0.0), out-of-range values, NaN, then random values.
SPECIAL = [-1.0, -0.0, 0.0, 0.25, 0.5, 1.0, 1.5, 2.5, 3.5, 3.9999, 4.0, 4.5, 10.0,
           0.49999997, float('nan')]


def _input(dtype=torch.float32, n=600, shape=None):
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.tensor(SPECIAL), torch.randn(n, generator=g) * 3]).to(dtype)
    return x.view(1, -1) if shape is None else x[:torch.Size(shape).numel()].view(shape)


def _fwd_bwd(neuron, x, mode):
    # The inputs hold a NaN on purpose: this compares the two paths' arithmetic, so the neurons'
    # non-finite check (which raises; tested in test_nonfinite.py) is off here.
    set_finite_check(neuron, False)
    x = x.detach().clone().requires_grad_()
    with execution_mode(neuron, mode):
        out = neuron(x)
    g = torch.linspace(-2, 3, out.numel(), dtype=out.dtype).view_as(out)
    out.backward(g)
    return out.detach(), x.grad


def _same(a, b):
    torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)


def test_mode_is_per_module_state_set_by_a_visitor(monkeypatch):
    from mmspike.models.layers import SpikeDrivenAttention
    a = torch.nn.Sequential(MultiSpike(), SpikeDrivenAttention(8, num_heads=2))
    b = torch.nn.Sequential(MultiSpike(), ILIF())
    assert get_execution_mode(a) == get_execution_mode(b) == {'fast'}
    # the attention and its 5 neurons, plus the first neuron
    assert set_execution_mode(a, 'plain') == 7
    assert get_execution_mode(a) == {'plain'} and get_execution_mode(b) == {'fast'}
    # two models of one process in different modes: each computes on its own path
    x = torch.randn(1, 1, 4, requires_grad=True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.dtype) or t,
                                                  lambda t: t):
        a[0](x), b[0](x)
    assert saved == [torch.float32, torch.bool]
    # the context manager gives each module its own previous mode back, also on an error
    b[1].execution_mode = 'plain'
    with pytest.raises(RuntimeError):
        with execution_mode(b, 'plain'):
            assert get_execution_mode(b) == {'plain'}
            raise RuntimeError
    assert (b[0].execution_mode, b[1].execution_mode) == ('fast', 'plain')
    with execution_mode(b, 'fast'):
        assert get_execution_mode(b) == {'fast'}
    assert (b[0].execution_mode, b[1].execution_mode) == ('fast', 'plain')
    with pytest.raises(ValueError, match="execution mode must be one of .*got 'turbo'"):
        set_execution_mode(a, 'turbo')
    with pytest.raises(ValueError, match="execution mode must be one of .*got 'turbo'"):
        MultiSpike(execution_mode='turbo')
    assert MultiSpike(execution_mode='plain').execution_mode == 'plain'
    # the environment variable sets the construction default only; a forward never reads it
    monkeypatch.setenv('MMSPIKE_EXECUTION_MODE', 'plain')
    n = MultiSpike()
    assert n.execution_mode == 'plain' and MultiSpike(execution_mode='fast').fast_path
    monkeypatch.setenv('MMSPIKE_EXECUTION_MODE', 'turbo')
    saved.clear()
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.dtype) or t,
                                                  lambda t: t):
        n(x)
    assert saved == [torch.float32]
    with pytest.raises(ValueError, match='MMSPIKE_EXECUTION_MODE must be one of'):
        MultiSpike()


@pytest.mark.parametrize('round_mode', ['half_up', 'half_even'])
@pytest.mark.parametrize('grad_window', ['closed', 'open'])
@pytest.mark.parametrize('norm', [None, 1.0, 3.0])
def test_integer_neuron_fast_equals_plain(round_mode, grad_window, norm):
    neuron = MultiSpike(norm=norm, round_mode=round_mode, grad_window=grad_window)
    x = _input()
    out_p, grad_p = _fwd_bwd(neuron, x, 'plain')
    out_f, grad_f = _fwd_bwd(neuron, x, 'fast')
    _same(out_f, out_p)
    _same(grad_f, grad_p)
    # and the values are right: D=4, the ties of half_up go up
    d = norm or 4.0
    ref = torch.tensor([0, 0, 0, 0, 1, 1, 2, 3, 4, 4, 4, 4, 4, 0])
    if round_mode == 'half_even':
        ref = torch.tensor([0, 0, 0, 0, 0, 1, 2, 2, 4, 4, 4, 4, 4, 0])
    _same(out_f[0, :14], ref.float() / d)
    assert torch.isnan(out_f[0, 14])


@pytest.mark.parametrize('dtype', [torch.float64, torch.bfloat16, torch.float16])
def test_other_dtypes_fast_equals_plain(dtype):
    neuron = MultiSpike(max_spikes=8)
    x = _input(dtype)
    out_p, grad_p = _fwd_bwd(neuron, x, 'plain')
    out_f, grad_f = _fwd_bwd(neuron, x, 'fast')
    assert out_f.dtype == dtype
    _same(out_f, out_p)
    _same(grad_f, grad_p)


def test_temporal_neuron_and_layouts_fast_equal_plain():
    # ILIF over T=3 (leak, soft reset): the loop fires each step with the fused kernel
    x = _input(shape=(3, 2, 4, 5, 5))
    for neuron in (ILIF(), IntegerNeuron(max_spikes=2, leak=0.5, norm=2.0)):
        out_p, grad_p = _fwd_bwd(neuron, x, 'plain')
        out_f, grad_f = _fwd_bwd(neuron, x, 'fast')
        _same(out_f, out_p)
        _same(grad_f, grad_p)
    # a channels-last map keeps its layout; a non-dense view is handled too
    x4 = _input(shape=(4, 6, 5, 5)).contiguous(memory_format=torch.channels_last)
    x5 = x4.unsqueeze(0)
    out_p, grad_p = _fwd_bwd(MultiSpike(), x5, 'plain')
    out_f, grad_f = _fwd_bwd(MultiSpike(), x5, 'fast')
    assert out_f.stride() == x5.stride()
    _same(out_f, out_p)
    _same(grad_f, grad_p)
    xs = _input(shape=(1, 4, 6, 10))[..., ::2]
    _same(_fwd_bwd(MultiSpike(), xs, 'fast')[1], _fwd_bwd(MultiSpike(), xs, 'plain')[1])


def test_backward_keeps_one_byte_per_element():
    x = torch.randn(1, 2, 8, 6, 6, requires_grad=True)
    for mode, kept in (('fast', torch.bool), ('plain', torch.float32)):
        saved = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t,
                                                      lambda t: t):
            MultiSpike(execution_mode=mode)(x)
        assert [(t.dtype, t.numel()) for t in saved] == [(kept, x.numel())], mode
    with torch.no_grad():  # inference keeps nothing and skips the mask
        assert not MultiSpike()(x).requires_grad


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_c_kernel_matches_torch_ops(dtype):
    if kernels.fire_backend(torch.empty(0, dtype=dtype)) != 'c':
        pytest.skip('C kernel unavailable (no compiler): the torch ops are used')
    x = _input(dtype, n=70000)  # > one chunk: exercises the threaded loop
    for half_up in (True, False):
        for open_window in (False, True):
            for code in ('full', 'window', None):
                out, c = kernels.fire_forward(x, 4, 3.0, half_up, open_window, code=code)
                ref_out, ref_c = kernels.fire_forward(x, 4, 3.0, half_up, open_window,
                                                      code=code, backend='torch')
                _same(out, ref_out)
                assert (c is None) == (code is None)
                if code:
                    assert c.dtype == ref_c.dtype and torch.equal(c, ref_c)
    c = kernels.fire_forward(x, 4, 3.0)[1]
    g = torch.randn(x.shape, dtype=dtype)
    for code in (c, c >= kernels.WINDOW_BIT):
        ref = kernels.fire_backward(g, code, 3.0, backend='torch')
        _same(kernels.fire_backward(g, code, 3.0), ref)
        _same(kernels.fire_backward(g.clone(), code, 3.0, inplace=True), ref)
    ref = kernels.decode_spikes(c, 3.0, dtype, backend='torch')
    _same(kernels.decode_spikes(c, 3.0, dtype), ref)
    _same(ref, torch.nan_to_num(kernels.fire_forward(x, 4, 3.0)[0], nan=0.0))


def test_kernel_argument_errors():
    x = torch.randn(4)
    with pytest.raises(ValueError, match="code must be one of"):
        kernels.fire_forward(x, 4, 4.0, code='bits')
    with pytest.raises(ValueError, match='code bytes hold spike counts up to 127'):
        kernels.fire_forward(x, 200, 1.0, code='full')
    with pytest.raises(ValueError, match="kernel backend must be 'auto' or one of"):
        kernels.fire_forward(x, 4, 4.0, backend='cuda')
    with pytest.raises(ValueError, match="kernel backend must be 'auto' or one of"):
        set_kernel_backend(MultiSpike(), 'cuda')
    with pytest.raises(TypeError, match='needs uint8 code bytes'):
        kernels.decode_spikes(x > 0, 4.0, torch.float32)
    # D beyond the code byte still works on the fast path (window mask only)
    big = MultiSpike(max_spikes=200, norm=1)
    xx = torch.tensor([[-3.0, 150.4, 150.5, 300.0]])
    _same(_fwd_bwd(big, xx, 'fast')[0], torch.tensor([[0.0, 150, 151, 200]]))
    _same(_fwd_bwd(big, xx, 'fast')[1], _fwd_bwd(big, xx, 'plain')[1])


_SUBPROCESS_CHECK = textwrap.dedent('''
    import warnings
    import torch
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        from mmspike.models.neurons import kernels
        cpu = kernels.fire_backend(torch.empty(0, dtype=torch.float64))
        cpu = kernels.fire_backend(torch.empty(0, dtype=torch.float64))
    # the compiler is missing: one warning naming the backend, device, dtype and cause, then
    # torch ops on float64
    assert cpu == 'torch', cpu
    msgs = [str(w.message) for w in caught if 'neuron kernel backend' in str(w.message)]
    assert len(msgs) == 1 and "'c' neuron kernel backend fails on cpu torch.float64" in msgs[0] \
        and 'build failed' in msgs[0] and "using 'torch' ops" in msgs[0], msgs
    # TRITON_INTERPRET=1 runs the Triton kernels on the CPU tensors. The interpreter flushes
    # bfloat16 subnormals (the probe's nextafter(0) window differs): the probe rejects it there,
    # once, and the bfloat16 kernels are checked through the backend object itself.
    open_full = ('fwd', 1, True, 'full')  # forward variant: half up, open window, code bytes
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        backends = {dt: kernels.fire_backend(torch.empty(0, dtype=dt), op=open_full)
                    for dt in (torch.float32, torch.float16, torch.bfloat16)}
        closed_bf16 = kernels.fire_backend(torch.empty(0, dtype=torch.bfloat16))
    assert closed_bf16 == 'torch'  # one failed variant disables the backend for the dtype
    assert backends == {torch.float32: 'triton', torch.float16: 'triton',
                        torch.bfloat16: 'torch'}, backends
    msgs = [str(w.message) for w in caught if "'triton' neuron kernel" in str(w.message)]
    assert len(msgs) == 1 and 'cpu torch.bfloat16' in msgs[0] and 'differs' in msgs[0], msgs
    tb = kernels.TritonKernelBackend()
    tb.load()

    def fwd(u, norm, half_up, open_w, code):
        if u.dtype != torch.bfloat16:
            return kernels.fire_forward(u, 4, norm, half_up, open_w, code=code)
        out = torch.empty_like(u)
        buf = None if code is None else torch.empty_like(
            u, dtype=torch.bool if code == 'window' else torch.uint8)
        tb.forward(u, out, buf, 4, norm, int(half_up), open_w, code == 'full')
        return out, buf

    def bwd(g, cc, norm):
        if g.dtype != torch.bfloat16:
            return kernels.fire_backward(g, cc, norm)
        gin = torch.empty_like(g)
        tb.backward(g, cc, gin, norm, 1 if cc.dtype == torch.bool else 128)
        return gin

    def dec(c, norm, dt):
        if dt != torch.bfloat16:
            return kernels.decode_spikes(c, norm, dt)
        s = torch.empty_like(c, dtype=dt)
        tb.decode(c, s, norm)
        return s

    x = torch.cat([torch.tensor(%r), torch.randn(2500) * 3])
    for dt in (torch.float32, torch.float16, torch.bfloat16):
        u = x.to(dt)
        # (the interpreter truncates float32 -> bfloat16, CUDA rounds: only exact quotients)
        for norm in ((4.0, 1.0) if dt == torch.bfloat16 else (4.0, 1.0, 3.0)):
            for half_up in (True, False):
                for open_w in (False, True):
                    for code in ('full', 'window', None):
                        out, c = fwd(u, norm, half_up, open_w, code)
                        ref, rc = kernels.fire_forward(u, 4, 1.0, half_up, open_w, code=code,
                                                       backend='torch')
                        # CUDA semantics: times the float32 reciprocal of norm
                        inv = torch.tensor(1.0) / torch.tensor(norm)
                        ref = (ref.float() * inv).to(dt)
                        torch.testing.assert_close(out, ref, rtol=0, atol=0, equal_nan=True)
                        if code:
                            assert torch.equal(c, rc), (dt, norm, half_up, open_w, code)
            c = fwd(u, norm, True, False, 'full')[1]
            g = torch.randn(u.shape).to(dt)
            for cc in (c, c >= 128):
                ref = kernels.fire_backward(g.float(), cc, 1.0, backend='torch')
                assert torch.equal(bwd(g, cc, norm), (ref * inv).to(dt))
            ref = ((c & 127).float() * inv).to(dt)
            assert torch.equal(dec(c, norm, dt), ref)
    print('OK')
''' % SPECIAL[:-1])


@pytest.mark.subprocess
def test_fallbacks_and_triton_kernels_in_interpreter(tmp_path):
    pytest.importorskip('triton')
    env = dict(os.environ, TRITON_INTERPRET='1', CC=str(tmp_path / 'no-such-cc'),
               MMSPIKE_KERNEL_CACHE=str(tmp_path / 'cache'), OMP_NUM_THREADS='1')
    env.pop('MMSPIKE_CPU_KERNEL', None)
    proc = subprocess.run([sys.executable, '-c', _SUBPROCESS_CHECK], env=env,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0 and 'OK' in proc.stdout, proc.stderr[-3000:]
