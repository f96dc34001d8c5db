"""The zero-skipping 1x1 conv forward kernel against ATen's own ``F.conv2d``, bit for bit."""
import copy
import warnings

import pytest
import torch
import torch.nn.functional as F

from mmspike.models import set_execution_mode
from mmspike.models.backbones import ESpikeFormer
from mmspike.models.layers import conv_fwd
from mmspike.models.neurons import set_kernel_backend

CL = torch.channels_last
AVX2 = torch.backends.cpu.get_cpu_capability() in ('AVX2', 'AVX512')


def _case(N, I, O, H, W, k=1, seed=0, spikes=True, density=0.3):
    """Spike counts / 4 (or normal values) with zeros at random places and in whole channels
    (as the model's spikes: silent channels), channels-last; weight and bias normal."""
    gen = torch.Generator().manual_seed(seed)
    x = (torch.randint(1, 5, (N, I, H, W), generator=gen).float() / 4 if spikes
         else torch.randn(N, I, H, W, generator=gen))
    x = x * (torch.rand(N, I, H, W, generator=gen) < density)
    x = x * (torch.rand(1, I, 1, 1, generator=gen) < 0.6)
    w = torch.randn(O, I, k, k, generator=gen)
    b = torch.randn(O, generator=gen)
    return x.contiguous(memory_format=CL), w, b


# (N, I, O, H, W, kernel, padding): E-SpikeFormer's MLP and attention 1x1 convs and its 3x3 MLP
# convs (shrunk), output blocks of 8 (O = 24) and, on AVX-512, of 64 + 48 + 8 (O = 120),
# 64 + 32 (O = 96) and 64 + 16 (O = 80), pixel counts that leave a partial tile of 6
# (35, 2 * 7 * 11; rows of 13 and of 3), no padding, a 5x5 kernel, one pixel (oneDNN sums
# that one in another order at 2 threads too: the self-check hands it to ATen)
GEOMETRIES = [(2, 256, 64, 14, 14, 1, 0), (2, 64, 256, 14, 14, 1, 0), (2, 360, 120, 7, 7, 1, 0),
              (1, 16, 24, 5, 7, 1, 0), (2, 48, 8, 7, 11, 1, 0), (1, 32, 16, 1, 1, 1, 0),
              (2, 64, 128, 14, 14, 3, 1), (2, 128, 32, 12, 13, 3, 1), (1, 16, 24, 7, 9, 3, 0),
              (2, 8, 16, 5, 3, 3, 1), (1, 32, 16, 9, 9, 5, 2), (2, 64, 96, 6, 7, 1, 0),
              (2, 40, 80, 6, 7, 3, 1)]
ATEN_ORDER_ELSEWHERE = {(1, 32, 16, 1, 1, 1, 0)}


@pytest.mark.parametrize('geometry', GEOMETRIES)
@pytest.mark.parametrize('threads', [1, 2])
def test_outputs_are_atens_bit_for_bit(geometry, threads):
    """With and without bias, on spikes and on normal values: the result equals
    ``F.conv2d``'s; at 2 threads (oneDNN's one chain per output, the benchmark's setting)
    the kernel itself produced it."""
    N, I, O, H, W, k, pad = geometry
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for spikes in (True, False):
            x, w, b = _case(N, I, O, H, W, k, spikes=spikes)
            for bias in (b, None):
                expected = F.conv2d(x, w, bias, 1, pad)
                out = conv_fwd.conv2d(x, w, bias, 1, pad)
                assert torch.equal(out, expected) and out.stride() == expected.stride()
                if AVX2 and threads == 2 and geometry not in ATEN_ORDER_ELSEWHERE:
                    # the kernel's own result, not a fallback to F.conv2d
                    key = (tuple(x.shape), x.stride(), tuple(w.shape), w.stride(), (pad, pad),
                           bias is None, threads)
                    assert conv_fwd.checked_geometries()[key] is True, \
                        'the kernel lost ATen\'s order'
                    # both tile sets: AVX-512's (where the CPU has it) and AVX2's
                    for avx512 in (True, False):
                        own = conv_fwd._kernel(conv_fwd._LIB.get(), x, w, bias, (pad, pad), 1.0,
                                               avx512=avx512)
                        assert own is not None and torch.equal(own, expected)
    finally:
        torch.set_num_threads(before)


@pytest.mark.skipif(not AVX2, reason='the kernel needs AVX2 + FMA')
@pytest.mark.parametrize('k', [1, 3])
def test_non_finite_values_give_atens_results(k):
    """An infinite weight makes ATen's ``0 * inf`` NaN: the kernel must not skip it (it hands
    the conv to ATen). Non-finite inputs are multiplied like any non-zero value."""
    pad = (k // 2, k // 2)
    x, w, b = _case(2, 32, 16, 6, 6, k, seed=1)
    lib = conv_fwd._LIB.get()
    w[3, 5, 0, 0] = float('inf')
    assert conv_fwd._kernel(lib, x, w, b, pad, 1.0) is None
    expected = F.conv2d(x, w, b, 1, pad)
    assert expected[:, 3].isnan().any()
    out = conv_fwd.conv2d(x, w, b, 1, pad)
    assert torch.equal(out.isnan(), expected.isnan())
    assert torch.equal(out.nan_to_num(0.0), expected.nan_to_num(0.0))
    x, w, b = _case(2, 32, 16, 6, 6, k, seed=2)
    x[0, 4, 1, 1], x[1, 7, 2, 3] = float('nan'), float('-inf')
    expected = F.conv2d(x, w, b, 1, pad)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        out = conv_fwd._kernel(lib, x, w, b, pad, 1.0)
    finally:
        torch.set_num_threads(before)
    assert out is not None and expected.isnan().sum() >= 16
    assert torch.equal(out.isnan(), expected.isnan())
    assert torch.equal(out.nan_to_num(0.0), expected.nan_to_num(0.0))


@pytest.mark.skipif(not AVX2, reason='the kernel needs AVX2 + FMA')
@pytest.mark.parametrize('k', [1, 3])
def test_dense_inputs_go_to_aten(k):
    """Where the sampled tiles list more than MAX_LISTED of the channels the kernel writes
    nothing (no faster there) and the result is F.conv2d's."""
    pad = (k // 2, k // 2)
    x, w, b = _case(2, 64, 32, 12, 12, k, density=1.0)
    x = (x + 1).contiguous(memory_format=CL)  # no zeros at all
    lib = conv_fwd._LIB.get()
    assert conv_fwd._kernel(lib, x, w, b, pad, conv_fwd.MAX_LISTED['1x1']) is None
    assert conv_fwd._kernel(lib, x, w, b, pad, conv_fwd.MAX_LISTED['kxk']) is None
    assert conv_fwd._kernel(lib, x, w, b, pad, 1.0) is not None
    assert torch.equal(conv_fwd.conv2d(x, w, b, 1, pad), F.conv2d(x, w, b, 1, pad))


def test_outside_the_kernel_aten_computes_it():
    """NCHW, float64, strided, dilated, grouped, over-padded, odd channel counts and autocast
    convs go to F.conv2d (same result, nothing checked)."""
    before = conv_fwd.checked_geometries()
    x, w, b = _case(2, 16, 16, 8, 8)
    w3 = torch.randn(16, 16, 3, 3)
    cases = [(x.contiguous(), w, b, {}), (x.double(), w.double(), b.double(), {}),
             (x, w3, b, dict(stride=2, padding=1)), (x, w3, b, dict(dilation=2, padding=2)),
             (x, w, b, dict(padding=1)), (x, w3, b, dict(padding=3)),
             (x, torch.randn(16, 8, 1, 1), b, dict(groups=2)),
             (x, torch.randn(12, 16, 1, 1), b[:12], {}),
             (x[:, :12].contiguous(memory_format=CL), w[:, :12], b, {})]
    for xx, ww, bb, kw in cases:
        geo = [kw.get(n, d) for n, d in (('stride', 1), ('padding', 0), ('dilation', 1))]
        assert not conv_fwd.applies(xx, ww, bb, *geo, kw.get('groups', 1))
        assert torch.equal(conv_fwd.conv2d(xx, ww, bb, **kw), F.conv2d(xx, ww, bb, **kw))
    assert not conv_fwd.applies(x, w3, b, 1, 'same', 1, 1)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert not conv_fwd.applies(x, w, b, (1, 1), (0, 0), (1, 1), 1)
        assert torch.equal(conv_fwd.conv2d(x, w, b), F.conv2d(x, w, b))
    assert conv_fwd.checked_geometries() == before


@pytest.mark.skipif(not AVX2, reason='the kernel needs AVX2 + FMA')
def test_fast_path_inference_uses_it_and_keeps_plain_bits():
    """E-SpikeFormer-2m channels-last at 2 threads: eval and train-mode outputs of the fast
    path equal the plain path's bit for bit, and its 1x1 convs went through the kernel; with
    the torch kernel backend they do not."""
    torch.manual_seed(0)
    model = ESpikeFormer('2m', out_indices=(3, )).to(memory_format=CL)
    x = torch.randn(2, 3, 56, 56).contiguous(memory_format=CL)
    before_threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        outs = {}
        for mode in ('plain', 'fast'):
            m = copy.deepcopy(model)  # train mode updates the BN running statistics
            set_execution_mode(m, mode)
            before = set(conv_fwd.checked_geometries())
            with torch.no_grad():
                outs[mode] = (m.eval()(x)[0], m.train()(x)[0])
            new = {k: v for k, v in conv_fwd.checked_geometries().items() if k not in before}
            if mode == 'plain':
                assert not new
        assert all(torch.equal(p, f) for p, f in zip(outs['plain'], outs['fast']))
        # 56x56 input: geometries no other test uses, so they are checked here; 1x1 and 3x3
        assert sum(k[2][2:] == (1, 1) for k in new) >= 4 and all(new.values())
        assert sum(k[2][2:] == (3, 3) for k in new) >= 2

        set_execution_mode(model, 'fast')
        set_kernel_backend(model, 'torch')
        before = conv_fwd.checked_geometries()
        with torch.no_grad():
            model.eval()(torch.randn(2, 3, 40, 40).contiguous(memory_format=CL))
        assert conv_fwd.checked_geometries() == before
    finally:
        torch.set_num_threads(before_threads)


def test_without_a_compiler_aten_computes_it_with_one_warning(tmp_path, monkeypatch):
    monkeypatch.setenv('MMSPIKE_KERNEL_CACHE', str(tmp_path))  # nothing built there yet
    monkeypatch.setenv('CC', str(tmp_path / 'no-such-compiler'))
    monkeypatch.setattr(conv_fwd._LIB, 'lib', None)  # restored after the test
    monkeypatch.setattr(conv_fwd._LIB, 'error', None)
    monkeypatch.setattr(conv_fwd, '_checked', {})
    x, w, b = _case(2, 16, 16, 8, 8)
    with pytest.warns(UserWarning, match='cannot be built.*no-such-compiler'):
        out = conv_fwd.conv2d(x, w, b)
    assert torch.equal(out, F.conv2d(x, w, b))
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # once: the second call is silent
        assert torch.equal(conv_fwd.conv2d(x, w, b), F.conv2d(x, w, b))
