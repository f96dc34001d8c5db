"""The kernel backend table (issue 13): capability probe, one named warning and the torch-ops
fallback on a failing backend, environment overrides read once, the backend as per-neuron state
(issue 12). Failing backends are real C kernels that do not build or compute the wrong thing,
registered through the table's API."""
import os
import warnings

import pytest
import torch
from torch import nn

from mmspike.models import execution_mode
from mmspike.models.layers import spike_convs
from mmspike.models.neurons import (MultiSpike, kernel_backend, kernels, set_finite_check,
                                    set_kernel_backend)

ENV = (kernels.ENV_DISABLE, kernels.ENV_BACKEND, 'MMSPIKE_CPU_KERNEL')


@pytest.fixture
def table(tmp_path):
    """A fresh table (environment of the test), the default one again afterwards."""
    saved = {k: os.environ.get(k) for k in ENV}
    os.environ['MMSPIKE_KERNEL_CACHE'] = str(tmp_path)  # the C builds of this test only
    try:
        yield kernels.rebuild_backend_table()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        os.environ.pop('MMSPIKE_KERNEL_CACHE')
        kernels.rebuild_backend_table()


def _c_available():
    return kernels.CKernelBackend().supports(torch.device('cpu'), torch.float32) and \
        kernels.fire_backend(torch.empty(0)) == 'c'


def _step(neuron, x, mode='fast'):
    set_finite_check(neuron, False)  # the probe-like input holds NaN on purpose
    x = x.detach().clone().requires_grad_()
    with execution_mode(neuron, mode):
        out = neuron(x)
    out.backward(torch.linspace(-2, 3, out.numel()).view_as(out))
    return out.detach(), x.grad


def _input():
    g = torch.Generator().manual_seed(1)
    return torch.cat([torch.tensor([0.5, 1.5, 2.5, -0.0, 4.0, 4.5, float('nan')]),
                      torch.randn(500, generator=g) * 3]).view(1, -1)


def _mmspike_warnings(caught):
    return [str(w.message) for w in caught if 'neuron kernel backend' in str(w.message)]


def test_backend_that_does_not_build_warns_once_and_falls_back(table):
    if not _c_available():
        pytest.skip('no C compiler: the C backends cannot be compared')
    broken = kernels.CKernelBackend('c-broken', kernels._C_SOURCE + '\n#error no such kernel\n')
    kernels.register_backend(broken, first=True)  # 'auto' tries it before 'c'
    assert kernels.backend_names()[:3] == ['c-broken', 'c', 'triton']
    neuron = MultiSpike(norm=3.0)
    ref = _step(neuron, _input(), 'plain')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        for _ in range(2):
            out, grad = _step(neuron, _input())
            torch.testing.assert_close(out, ref[0], rtol=0, atol=0, equal_nan=True)
            torch.testing.assert_close(grad, ref[1], rtol=0, atol=0)
    msgs = _mmspike_warnings(caught)
    assert len(msgs) == 1, msgs
    assert ("the 'c-broken' neuron kernel backend fails on cpu torch.float32 (build failed: "
            in msgs[0]) and '#error no such kernel' in msgs[0] and "using 'c' ops" in msgs[0]
    assert kernels.fire_backend(torch.empty(0)) == 'c'
    assert kernels.fire_backend(torch.empty(0), backend='c-broken') == 'c'
    assert list(kernels.backend_failures()) == [('c-broken', torch.device('cpu'), torch.float32)]


def test_backend_that_mismatches_is_caught_by_the_probe(table):
    if not _c_available():
        pytest.skip('no C compiler: the C backends cannot be compared')
    # a real kernel with a real bug: half-up ties round down
    source = kernels._C_SOURCE.replace('((c - fl) >= (T)0.5 ?', '((c - fl) > (T)0.5 ?')
    assert source != kernels._C_SOURCE
    kernels.register_backend(kernels.CKernelBackend('c-wrong', source))
    wrong = kernels._table().backends['c-wrong']
    wrong.load()
    u = torch.tensor([0.5, 1.5, 2.4])
    out = torch.empty_like(u)
    wrong.forward(u, out, None, 4, 1.0, 1, False, False)
    assert out.tolist() == [0.0, 1.0, 2.0]  # the bug is there

    # a model whose two neurons use different backends: per-module state
    model = nn.Sequential(MultiSpike(), MultiSpike())
    assert set_kernel_backend(model[0], 'c-wrong') == 1
    ref = _step(MultiSpike(), _input(), 'plain')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        out, grad = _step(model[0], _input())
    msgs = _mmspike_warnings(caught)
    assert len(msgs) == 1 and "'c-wrong' neuron kernel backend fails on cpu torch.float32" in \
        msgs[0] and 'differs from the torch ops' in msgs[0] and "using 'c' ops" in msgs[0], msgs
    torch.testing.assert_close(out, ref[0], rtol=0, atol=0, equal_nan=True)
    torch.testing.assert_close(grad, ref[1], rtol=0, atol=0)
    assert (model[0].kernel_backend, model[1].kernel_backend) == ('c-wrong', 'auto')

    # the fused spike-conv takes the neuron's backend and falls back as well
    conv = nn.Conv2d(4, 6, 3, padding=1)
    x = (torch.randn(1, 2, 4, 5, 5) * 3).requires_grad_()
    fused = spike_convs(x, model[0], [conv])[0]
    fused.sum().backward()
    gx, gw = x.grad.clone(), conv.weight.grad.clone()
    x.grad, conv.weight.grad = None, None
    with execution_mode(model[1], 'plain'):
        plain = conv(model[1](x).flatten(0, 1))
    plain.sum().backward()
    assert torch.equal(fused, plain) and torch.equal(gx, x.grad) and torch.equal(gw,
                                                                                 conv.weight.grad)
    kernels.unregister_backend('c-wrong')
    with pytest.raises(ValueError, match="kernel backend must be 'auto' or one of"):
        _step(model[0], _input())


def test_environment_overrides_are_read_once(table):
    os.environ[kernels.ENV_DISABLE] = 'c,triton'
    kernels.rebuild_backend_table()
    u = torch.randn(5)
    assert kernels.fire_backend(u) == 'torch'
    assert kernels.fire_backend(u, backend='c') == 'torch'  # forbidden even when named
    os.environ.pop(kernels.ENV_DISABLE)
    assert kernels.fire_backend(u, backend='c') == 'torch'  # not re-read per call
    os.environ[kernels.ENV_BACKEND] = 'torch'
    kernels.rebuild_backend_table()
    assert kernels.fire_backend(u) == 'torch'  # what 'auto' means
    if _c_available():
        assert kernels.fire_backend(u, backend='c') == 'c'  # a named backend still applies
    os.environ[kernels.ENV_BACKEND] = 'gpu'
    with pytest.raises(ValueError, match="MMSPIKE_KERNEL_BACKEND must be auto or one of .*'gpu'"):
        kernels.rebuild_backend_table()
    os.environ.pop(kernels.ENV_BACKEND)
    os.environ[kernels.ENV_DISABLE] = 'c,cuda'
    with pytest.raises(ValueError, match="MMSPIKE_KERNELS_DISABLE names 'cuda'"):
        kernels.rebuild_backend_table()
    os.environ.pop(kernels.ENV_DISABLE)
    os.environ['MMSPIKE_CPU_KERNEL'] = '0'  # the older spelling
    kernels.rebuild_backend_table()
    assert kernels.fire_backend(u) == 'torch'


def test_kernel_backend_visitor_and_context_manager():
    model = nn.Sequential(MultiSpike(), nn.Identity(), MultiSpike())
    model[2].kernel_backend = 'c'
    with kernel_backend(model, 'torch'):
        assert [m.kernel_backend for m in (model[0], model[2])] == ['torch', 'torch']
        x = torch.randn(1, 40)
        assert torch.equal(model(x), model[2](model[0](x)))
    assert [m.kernel_backend for m in (model[0], model[2])] == ['auto', 'c']
    with pytest.raises(RuntimeError):  # restored on an error too
        with kernel_backend(model, 'torch'):
            raise RuntimeError
    assert model[2].kernel_backend == 'c'
    with pytest.raises(ValueError, match="kernel backend must be 'auto' or one of"):
        set_kernel_backend(model, 'cuda')


def test_device_guard_keeps_host_kernels_off_other_devices():
    # the C kernel reads host memory: a tensor elsewhere (here 'meta') gets the torch ops
    u = torch.empty(2, 3, device='meta')
    assert kernels.fire_backend(u, backend='c') == 'torch'
    out, code = kernels.fire_forward(u, 4, 4.0, backend='c')
    assert out.device.type == 'meta' and code.dtype == torch.uint8
    assert not kernels.CKernelBackend().supports(torch.device('cuda', 1), torch.float32)


@pytest.mark.cuda
@pytest.mark.parametrize('dtype', [torch.float32, torch.float16, torch.bfloat16])
def test_triton_on_cuda_passes_its_probe_and_equals_torch_ops(dtype):
    if not torch.cuda.is_available():
        pytest.skip('no CUDA device')
    pytest.importorskip('triton')
    devices = [torch.device('cuda', i) for i in range(min(torch.cuda.device_count(), 2))]
    for device in devices:  # cuda:1 while cuda:0 is current: the device guard
        x = (torch.randn(10007) * 3).to(dtype).to(device)
        assert kernels.fire_backend(x) == 'triton', kernels.backend_failures()
        for code in ('full', 'window'):
            out, c = kernels.fire_forward(x, 4, 3.0, 1, False, code)
            ref, rc = kernels.fire_forward(x, 4, 3.0, 1, False, code, backend='torch')
            assert torch.equal(out, ref) and torch.equal(c, rc)
            g = torch.randn_like(x)
            assert torch.equal(kernels.fire_backward(g, c, 3.0),
                               kernels.fire_backward(g, c, 3.0, backend='torch'))


def _bn(C, dtype, affine=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda: torch.randn(C, generator=g, dtype=torch.float64).to(dtype)  # noqa: E731
    return kernels.BNParams(r() if affine else None, r() if affine else None, r(),
                            (torch.rand(C, generator=g, dtype=torch.float64) * 3).to(dtype),
                            1e-5)


def _bn_then_fire(x, bn, rounding, norm=1.0):
    y = torch.nn.functional.batch_norm(x, bn.mean, bn.var, bn.weight, bn.bias, False, 0.0,
                                       bn.eps)
    return kernels.fire_forward(y, 4, norm, rounding, code=None, backend='torch')[0]


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('channels_last', [False, True])
def test_fused_inference_bn_equals_aten_batch_norm_then_firing(dtype, channels_last):
    """The C kernel's BN (fma(x, alpha, fma(-mean, alpha, bias))) rounds as ATen's does."""
    if not _c_available():
        pytest.skip('no C compiler: nothing fuses BN')
    g = torch.Generator().manual_seed(3)
    x = (torch.randn(4, 45, 9, 11, generator=g, dtype=torch.float64) * 4).to(dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    for affine in (True, False):
        bn = _bn(45, dtype, affine)
        raw = torch.empty_like(x)  # the BN value itself, bit for bit
        kernels._table().backends['c'].bn_forward(x, raw, bn, channels_last, 4, 1.0,
                                                  kernels.BN_ONLY)
        assert torch.equal(raw, torch.nn.functional.batch_norm(
            x, bn.mean, bn.var, bn.weight, bn.bias, False, 0.0, bn.eps))
        for rounding in (0, 1, 2):
            for norm in (1.0, 4.0):
                out = kernels.fire_bn_forward(x, bn, 4, norm, rounding)
                expected = _bn_then_fire(x, bn, rounding, norm)
                assert out is not None and torch.equal(out, expected)
                assert out.stride() == x.stride()  # layout kept
                # written over its own input: the same spikes
                own = x.clone()
                assert kernels.fire_bn_forward(own, bn, 4, norm, rounding, out=own) is own
                assert torch.equal(own, expected)
    with pytest.raises(ValueError, match='strides of x'):
        kernels.fire_bn_forward(x, _bn(45, dtype), 4, 1.0,
                                out=torch.empty(x.shape, dtype=dtype).transpose(2, 3)
                                .contiguous().transpose(2, 3))
    # non-finite BN outputs reach the neuron's check with their exact number
    x[0, 0, 0, :3] = torch.tensor([float('nan'), float('inf'), -float('inf')], dtype=dtype)
    seen = []
    kernels.fire_bn_forward(x, _bn(45, dtype), 4, 1.0, on_nonfinite=lambda u, n: seen.append(n))
    assert seen == [3]
    # what it does not fuse, it says so (None): the caller runs BN and the firing itself
    assert kernels.fire_bn_forward(x[:, :, :, ::2], _bn(45, dtype), 4, 1.0) is None
    assert kernels.fire_bn_forward(x, _bn(45, dtype), 4, 1.0, backend='torch') is None
    assert kernels.fire_bn_forward(x, _bn(44, dtype), 4, 1.0) is None  # wrong channel count


def test_fused_bn_that_rounds_otherwise_is_caught_by_its_probe(table):
    """A BN + firing kernel that rounds x * alpha + beta twice (as an ATen without FMA would):
    the probe catches it, one warning, BN runs as its own op; the backend's firing still runs."""
    if not _c_available():
        pytest.skip('no C compiler: the C backends cannot be compared')
    fused = 'T x = FMA(ur[j], cl ? a[j] : as, cl ? b[j] : bs);'
    assert fused in kernels._C_SOURCE
    source = kernels._C_SOURCE.replace(fused,
                                       'T x = ur[j] * (cl ? a[j] : as) + (cl ? b[j] : bs);')
    kernels.register_backend(kernels.CKernelBackend('c-nofma', source), first=True)
    x = torch.randn(8, 64, 16, 16) * 4
    bn = _bn(64, torch.float32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        assert kernels.fire_bn_forward(x, bn, 4, 1.0, backend='c-nofma') is None
        assert kernels.fire_bn_forward(x, bn, 4, 1.0, backend='c-nofma') is None
        assert kernels.fire_bn_forward(x, bn, 4, 1.0, backend='c') is not None
    msgs = [str(w.message) for w in caught if 'mmspike' in str(w.message)]
    assert len(msgs) == 1 and "the 'c-nofma' backend cannot fuse inference batch norm" in \
        msgs[0] and 'batch norm (affine True, channels-last False) differs from F.batch_norm' in msgs[0], msgs
    # its firing kernel passed its own probe and still serves
    assert kernels.fire_backend(x, backend='c-nofma', op=('fwd', 1, False, None)) == 'c-nofma'
    wrong = kernels._table().backends['c-nofma']
    out = torch.empty_like(x)
    wrong.bn_forward(x, out, bn, False, 4, 1.0, kernels.BN_ONLY)
    ref = torch.nn.functional.batch_norm(x, bn.mean, bn.var, bn.weight, bn.bias, False, 0.0,
                                         bn.eps)
    assert not torch.equal(out, ref)  # the double rounding is real (rarely a different spike)
