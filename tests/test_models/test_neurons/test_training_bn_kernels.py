"""Training-mode BatchNorm fused with the neuron (issue 16): the C kernels against ATen itself
(``F.batch_norm(training=True)`` then the neuron's torch ops, and autograd's gradients through
both), bit for bit, on the shapes and thread counts where ATen's order changes; the running
statistics as ATen updates them; a kernel that rounds otherwise is caught by its probe."""
import os
import warnings

import pytest
import torch
import torch.nn.functional as F

from mmspike.models.neurons import kernels


def _c_available():
    return kernels.fire_backend(torch.empty(0)) == 'c'


pytestmark = pytest.mark.skipif(not _c_available(), reason='no C compiler: nothing fuses BN')


def _data(shape, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    rnd = lambda *s, scale=1.0: (torch.randn(*s, generator=g, dtype=torch.float64)  # noqa
                                 * scale).to(dtype)
    x = (rnd(*shape, scale=3.0) + 1).contiguous(memory_format=torch.channels_last)
    grad = rnd(*shape, scale=2.0).contiguous(memory_format=torch.channels_last)
    C = shape[1]
    return x, grad, rnd(C), rnd(C), rnd(C), rnd(C).abs() + 0.5


def _reference(x, grad, w, b, rm, rv, D, norm, rounding, open_window, momentum=0.1):
    """ATen's training batch norm then the neuron (torch ops), through autograd."""
    leaves = [t.clone().requires_grad_() for t in (x, w, b) if t is not None]
    y = F.batch_norm(leaves[0], rm, rv, *(leaves[1:] or [None, None]), True, momentum, 1e-5)
    s, code = kernels.fire_forward(y.detach(), D, norm, rounding, open_window, backend='torch')
    dy = kernels.fire_backward(grad, code, norm, backend='torch')
    return s, code, torch.autograd.grad(y, leaves, dy)


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('shape', [(8, 64, 14, 14), (3, 37, 5, 7), (2, 13, 1, 3),
                                   (1, 20, 1, 2), (5, 96, 9, 9), (6, 19, 1, 1)])
@pytest.mark.parametrize('threads', [1, 2, 3])
def test_fused_training_bn_equals_aten_then_the_neuron(dtype, shape, threads):
    """Forward spikes and code bytes, input / weight / bias gradients and the running
    statistics: the bits of ATen's batch norm and the neuron's ops, with ATen's partial vectors
    (37, 13, 20, 19 channels), its row split over 1-3 threads (2 x 1 x 3 = 6 rows: 3 threads)
    and 1x1 maps (NCHW-contiguous too: ATen takes its channels-last path there)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        x, grad, w, b, rm, rv = _data(shape, dtype, seed=sum(shape))
        for affine, rounding, open_window, norm in [(True, 1, False, 4.0), (False, 0, True, 1.0),
                                                    (True, 2, False, 3.0)]:
            wa, ba = (w, b) if affine else (None, None)
            rm_ref, rv_ref, rm_got, rv_got = rm.clone(), rv.clone(), rm.clone(), rv.clone()
            s_ref, code_ref, grads = _reference(x, grad, wa, ba, rm_ref, rv_ref, 4, norm,
                                                rounding, open_window)
            fired = kernels.fire_bn_train_forward(x, wa, ba, rm_got, rv_got, 0.1, 1e-5, 4, norm,
                                                  rounding, open_window)
            assert fired is not None
            s, code, mean, invstd = fired
            assert torch.equal(s, s_ref) and torch.equal(code, code_ref)
            assert s.stride() == x.stride()
            assert torch.equal(rm_got, rm_ref) and torch.equal(rv_got, rv_ref)
            g = grad.clone()
            got = kernels.fire_bn_train_backward(g, code, x, mean, invstd, wa, norm, 1e-5,
                                                 [True, affine, affine], rounding, open_window,
                                                 inplace=True)
            assert got[0] is g  # in place: no allocation
            for a, r in zip([t for t in got if t is not None], grads):
                assert torch.equal(a, r)
    finally:
        torch.set_num_threads(before)


def test_gradient_in_another_layout_falls_back_to_the_same_bits():
    """A spikes' gradient that is not channels-last: the neuron's backward then ATen's batch
    norm backward run as ops (the kernel reads channels-last rows only)."""
    x, grad, w, b, _, _ = _data((4, 24, 6, 6), torch.float32, seed=5)
    fired = kernels.fire_bn_train_forward(x, w, b, None, None, 0.1, 1e-5, 4, 4.0)
    s, code, mean, invstd = fired
    nchw = grad.contiguous()
    got = kernels.fire_bn_train_backward(nchw, code, x, mean, invstd, w, 4.0, 1e-5,
                                         [True, True, True])
    dy = kernels.fire_backward(nchw, code, 4.0, backend='torch')
    ref = torch.ops.aten.native_batch_norm_backward(dy, x, w, None, None, mean, invstd, True,
                                                    1e-5, [True, True, True])
    assert all(torch.equal(a, r) for a, r in zip(got, ref))


def test_what_it_does_not_fuse_returns_none_and_leaves_running_stats():
    x, _, w, b, rm, rv = _data((4, 24, 6, 6), torch.float32, seed=6)
    rm0, rv0 = rm.clone(), rv.clone()
    for args in [(x.contiguous(), w, b),  # NCHW: ATen's backward takes another order
                 (x[:, :, :, ::2], w, b),  # not dense
                 (x, w[:23], b),  # wrong channel count
                 (x, w.double(), b)]:  # another dtype
        assert kernels.fire_bn_train_forward(*args, rm, rv, 0.1, 1e-5, 4, 1.0) is None
    assert kernels.fire_bn_train_forward(x, w, b, rm, rv, 0.1, 1e-5, 4, 1.0,
                                         backend='torch') is None
    assert kernels.fire_bn_train_forward(x, w, b, rm, None, 0.1, 1e-5, 4, 1.0) is None
    one_channel = torch.randn(2, 1, 6, 6)  # channels-last and NCHW at once: ATen's NCHW path
    assert kernels.fire_bn_train_forward(one_channel, w[:1], b[:1], rm[:1], rv[:1], 0.1, 1e-5,
                                         4, 1.0) is None
    assert torch.equal(rm, rm0) and torch.equal(rv, rv0)


def test_nonfinite_bn_outputs_reach_the_neurons_check():
    x, _, w, b, _, _ = _data((2, 16, 4, 4), torch.float32, seed=7)
    x[0, 3, 0, 0] = float('nan')  # a NaN poisons its channel's statistics: 2 * 4 * 4 outputs
    seen = []
    kernels.fire_bn_train_forward(x, w, b, None, None, 0.1, 1e-5, 4, 1.0,
                                  on_nonfinite=lambda u, n: seen.append(n))
    assert seen == [32]


@pytest.fixture
def table(tmp_path):
    os.environ['MMSPIKE_KERNEL_CACHE'] = str(tmp_path)
    try:
        yield kernels.rebuild_backend_table()
    finally:
        os.environ.pop('MMSPIKE_KERNEL_CACHE')
        kernels.rebuild_backend_table()


def test_a_kernel_that_rounds_otherwise_is_caught_by_its_probe(table):
    """A backward with ATen's contracted FMA written as two roundings: its probe fails, one
    warning, nothing fused on that backend; the shipped kernel still serves."""
    fused = 'dotp[j] = FMA(x[o + j] - mean[j], dy, dotp[j]);'
    assert fused in kernels._C_SOURCE
    source = kernels._C_SOURCE.replace(fused, 'dotp[j] = dotp[j] + (x[o + j] - mean[j]) * dy;')
    kernels.register_backend(kernels.CKernelBackend('c-twice', source), first=True)
    x, _, w, b, _, _ = _data((4, 24, 6, 6), torch.float32, seed=8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        for _ in range(2):
            assert kernels.fire_bn_train_forward(x, w, b, None, None, 0.1, 1e-5, 4, 1.0,
                                                 backend='c-twice') is None
        assert kernels.fire_bn_train_forward(x, w, b, None, None, 0.1, 1e-5, 4, 1.0,
                                             backend='c') is not None
    msgs = [str(m.message) for m in caught if 'mmspike' in str(m.message)]
    assert len(msgs) == 1 and "'c-twice' backend cannot fuse training batch norm" in msgs[0]
    assert 'backward (affine True, norm 1.0) differs from autograd' in msgs[0], msgs
