"""The conv weight- and bias-gradient kernel against ATen's own gradients, bit for bit."""
import warnings

import pytest
import torch

from mmspike.models.backbones import ESpikeFormer
from mmspike.models import set_execution_mode
from mmspike.models.layers import conv_grad
from mmspike.models.neurons import set_kernel_backend

CL = torch.channels_last
AVX2 = torch.backends.cpu.get_cpu_capability() in ('AVX2', 'AVX512')
# where ATen's capability is AVX-512, oneDNN runs its AVX-512 kernels, which sum in other orders
# (the self-check then hands the convs to ATen: the same bits, not the kernel)
ONEDNN_AVX2 = torch.backends.cpu.get_cpu_capability() == 'AVX2'


def _aten(g, x, w, stride, padding, groups):
    return torch.ops.aten.convolution_backward(g, x, w, None, list(stride), list(padding),
                                               [1, 1], False, [0, 0], groups,
                                               [False, True, False])[1]


def _case(N, I, O, H, k, stride, padding, groups=1, seed=0, spikes=True):
    gen = torch.Generator().manual_seed(seed)
    x = (torch.randint(0, 5, (N, I, H, H), generator=gen).float() / 4 if spikes
         else torch.randn(N, I, H, H, generator=gen))
    w = torch.randn(O, I // groups, k, k, generator=gen)
    OH = (H + 2 * padding - k) // stride + 1
    g = torch.randn(N, O, OH, OH, generator=gen)
    return [t.contiguous(memory_format=CL) for t in (g, x, w)]


# (N, I, O, H, kernel, stride, padding, groups): E-SpikeFormer's 3x3 MLP convs and stride-2
# downsampling convs, its 7x7 and 3x3 depthwise convs, odd channel counts, no padding,
# a remainder output block (O = 24), one input channel
GEOMETRIES = [(2, 32, 128, 28, 3, 1, 1, 1), (2, 128, 32, 28, 3, 1, 1, 1),
              (2, 32, 64, 30, 3, 2, 1, 1), (3, 7, 24, 11, 3, 1, 1, 1), (2, 13, 8, 9, 3, 2, 0, 1),
              (2, 1, 16, 10, 5, 1, 2, 1), (2, 64, 64, 28, 7, 1, 3, 64),
              (2, 104, 104, 14, 3, 1, 1, 104), (1, 200, 200, 9, 3, 2, 1, 200)]


def _key(g, x, w, stride, padding, groups, threads):
    return (tuple(x.shape), x.stride(), tuple(g.shape), g.stride(), tuple(w.shape), w.stride(),
            (stride, ) * 2, (padding, ) * 2, groups, threads)


@pytest.mark.parametrize('geometry', GEOMETRIES + [(3, 13, 8, 9, 3, 1, 1, 1),
                                      (5, 16, 24, 7, 3, 2, 1, 1)])
@pytest.mark.parametrize('threads', [1, 2])
def test_weight_and_bias_grads_are_atens_bit_for_bit(geometry, threads):
    """The weight gradient alone and with the bias gradient equal ATen's. The bias is one
    chain over the pixels, or one per thread's share of the images where oneDNN splits them
    (few output channels at 2 threads, as the odd batch sizes here make visible)."""
    N, I, O, H, k, stride, padding, groups = geometry
    geo = ((stride, ) * 2, (padding, ) * 2, (1, 1), groups)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for spikes in (True, False):
            g, x, w = _case(N, I, O, H, k, stride, padding, groups, spikes=spikes)
            out = conv_grad.conv2d_weight_grad(g, x, w, *geo)
            assert torch.equal(out, _aten(g, x, w, *geo[:2], groups)) and out.shape == w.shape
            _, ew, eb = torch.ops.aten.convolution_backward(
                g, x, w, [O], *geo[:3], False, [0, 0], groups, [False, True, True])
            gw, gb = conv_grad.conv2d_param_grads(g, x, w, *geo, bias=True)
            assert torch.equal(gw, ew) and torch.equal(gb, eb) and gb.shape == (O, )
            assert conv_grad.conv2d_param_grads(g, x, w, *geo)[1] is None
    finally:
        torch.set_num_threads(before)
    key = _key(g, x, w, stride, padding, groups, threads)
    # measured with this oneDNN on AVX2: ONE chain per weight for every dense conv at any thread
    # count, and one of the two bias orders; for depthwise convs it depends on the channels, the
    # size and the thread count (the self-check hands the others to ATen), so only their bits
    # are asserted
    if ONEDNN_AVX2 and groups == 1:
        assert conv_grad.checked_geometries()[key] is True, 'the kernel lost ATen\'s order'
        assert conv_grad.checked_bias_orders()[key] in (1, min(threads, N)), \
            'the kernel no longer sums the bias as ATen'


def test_outside_the_kernel_aten_computes_it():
    """NCHW, float64, 1x1 and dilated convs go to ATen (same bits, nothing checked)."""
    before = conv_grad.checked_geometries()
    g, x, w = _case(2, 16, 16, 8, 3, 1, 1)
    cases = [((g.contiguous(), x.contiguous(), w.contiguous()), 1),
             ((g.double(), x.double(), w.double()), 1)]
    g1, x1, w1 = _case(2, 16, 16, 8, 1, 1, 0)
    cases.append(((g1, x1, w1), 1))
    for (gg, xx, ww), groups in cases:
        assert not conv_grad.applies(xx, gg, ww, (1, 1), (ww.shape[-1] // 2, ) * 2, (1, 1),
                                     groups)
        out = conv_grad.conv2d_weight_grad(gg, xx, ww, (1, 1), (ww.shape[-1] // 2, ) * 2)
        assert torch.equal(out, _aten(gg, xx, ww, (1, 1), (ww.shape[-1] // 2, ) * 2, groups))
    assert not conv_grad.applies(x, g, w, (1, 1), (1, 1), (2, 2), 1)
    assert conv_grad.checked_geometries() == before


@pytest.mark.skipif(not AVX2, reason='the kernel needs AVX2 + FMA')
def test_fast_path_training_uses_it_and_keeps_plain_bits():
    """E-SpikeFormer-2m channels-last: one training step on the fast path gives the plain
    path's weight gradients bit for bit, and its 3x3 and depthwise convs went through the
    kernel; with the torch kernel backend they do not."""
    torch.manual_seed(0)
    model = ESpikeFormer('2m', out_indices=(3, )).to(memory_format=CL)
    x = torch.randn(2, 3, 48, 48)

    def grads(mode):
        set_execution_mode(model, mode)
        model.zero_grad()
        model(x)[0].square().mean().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    plain = grads('plain')
    before = set(conv_grad.checked_geometries())
    fast = grads('fast')
    new = {k: v for k, v in conv_grad.checked_geometries().items() if k not in before}
    assert all(torch.equal(plain[n], fast[n]) for n in plain) and plain.keys() == fast.keys()
    # 48x48 input: geometries no other test uses, so they are checked here
    assert sum(k[-2] == 1 for k in new) >= 5 and sum(k[-2] > 1 for k in new) >= 3
    if ONEDNN_AVX2:
        assert all(v for k, v in new.items() if k[-2] == 1)  # dense convs: as measured above

    set_kernel_backend(model, 'torch')
    x = torch.randn(2, 3, 40, 40)
    before = conv_grad.checked_geometries()
    grads('fast')
    assert conv_grad.checked_geometries() == before


def test_non_finite_gradients_give_atens_nans():
    """ATen multiplies the padding's zeros too (inf * 0 = NaN); the result must still be its."""
    g, x, w = _case(1, 8, 16, 6, 3, 1, 1, seed=3)
    g = g.clone()
    g[0, :, 0, 0] = float('inf')  # a corner: five of its taps are padding
    g[0, 3, 2, 2] = float('nan')
    expected = _aten(g, x, w, (1, 1), (1, 1), 1)
    out, gb = conv_grad.conv2d_param_grads(g, x, w, (1, 1), (1, 1), bias=True)
    assert expected.isnan().sum() > 72  # NaN from the padding, not only from the NaN pixel
    assert torch.equal(out.isnan(), expected.isnan())
    assert torch.equal(out.nan_to_num(0.0), expected.nan_to_num(0.0))
    eb = torch.ops.aten.convolution_backward(g, x, w, [16], [1, 1], [1, 1], [1, 1], False,
                                             [0, 0], 1, [False, False, True])[2]
    assert gb.isnan().sum() == 1 and gb.isinf().sum() == 15  # NaN only where the NaN was
    assert torch.equal(gb.isnan(), eb.isnan())
    assert torch.equal(gb.nan_to_num(0.0), eb.nan_to_num(0.0))
    # padding as large as the kernel: pixels that see only padding; left to ATen
    assert not conv_grad.applies(x, g, w, (1, 1), (3, 3), (1, 1), 1)


def test_without_a_compiler_aten_computes_it_with_one_warning(tmp_path, monkeypatch):
    monkeypatch.setenv('MMSPIKE_KERNEL_CACHE', str(tmp_path))  # nothing built there yet
    monkeypatch.setenv('CC', str(tmp_path / 'no-such-compiler'))
    monkeypatch.setattr(conv_grad._LIB, 'lib', None)  # restored after the test
    monkeypatch.setattr(conv_grad._LIB, 'error', None)
    monkeypatch.setattr(conv_grad, '_checked', {})
    g, x, w = _case(2, 16, 16, 8, 3, 1, 1)
    with pytest.warns(UserWarning, match='cannot be built.*no-such-compiler'):
        out = conv_grad.conv2d_weight_grad(g, x, w, (1, 1), (1, 1))
    assert torch.equal(out, _aten(g, x, w, (1, 1), (1, 1), 1))
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # once: the second call is silent
        out = conv_grad.conv2d_weight_grad(g, x, w, (1, 1), (1, 1))
    assert torch.equal(out, _aten(g, x, w, (1, 1), (1, 1), 1))
