"""Inference BatchNorm fused into the next neuron's firing pass (spike_conv_bn_chain, the
attention's Q/K/V projections): the fast path computes the plain path's bits, and the fusion runs only where it may (inference, no
gradient wanted, nobody watching the layers)."""
import copy

import pytest
import torch

from mmspike.models import execution_mode
from mmspike.models.backbones import ESpikeFormer
from mmspike.models.neurons import kernels


@pytest.fixture
def fused_calls(monkeypatch):
    """How often the fused BN + firing kernel ran (None results not counted)."""
    calls = []
    original = kernels.fire_bn_forward

    def counting(*args, **kwargs):
        out = original(*args, **kwargs)
        if out is not None:
            calls.append('over its input' if out is args[0] else 'new')
        return out

    monkeypatch.setattr(kernels, 'fire_bn_forward', counting)
    return calls


def _calibrated_2m(dtype=torch.float32, channels_last=False):
    torch.manual_seed(0)
    model = ESpikeFormer('2m', out_indices=(0, 1, 2, 3)).to(dtype).train()
    with torch.no_grad():  # running statistics that are not the identity
        for _ in range(2):
            model(torch.randn(4, 3, 64, 64, dtype=dtype))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model.eval()


def _c_available():
    return kernels.fire_backend(torch.empty(0)) == 'c'


@pytest.mark.parametrize('dtype,channels_last', [(torch.float32, False),
                                                 (torch.float32, True),
                                                 (torch.float64, False)])
def test_inference_fast_path_fuses_bn_and_equals_plain(dtype, channels_last, fused_calls):
    model = _calibrated_2m(dtype, channels_last)
    x = torch.randn(2, 3, 64, 64, dtype=dtype) * 2
    outs = {}
    for mode in ('plain', 'fast'):
        del fused_calls[:]
        with torch.no_grad(), execution_mode(model, mode):
            outs[mode] = model(x)
        if mode == 'plain':
            assert not fused_calls
    for p, f in zip(outs['plain'], outs['fast']):
        assert torch.equal(p, f) and p.stride() == f.stride()
    if _c_available():
        # 2m: 36 links of spike_conv_bn_chain (SepConv, MLP, conv blocks) and the Q/K/V
        # projections' BNs of its 8 Transformer blocks (24), each inside the next neuron; the
        # chain's spikes over its own temporary (the previous link's conv output)
        assert fused_calls.count('over its input') == 36, fused_calls
        assert fused_calls.count('new') == 24, fused_calls


def test_no_fusion_when_a_backward_follows_or_in_training(fused_calls):
    model = _calibrated_2m()
    x = torch.randn(2, 3, 64, 64)
    ref = copy.deepcopy(model)
    with execution_mode(model, 'fast'):
        out = model(x)[-1]  # eval, gradients wanted: BN keeps its autograd node
    assert not fused_calls
    out.sum().backward()
    with execution_mode(ref, 'plain'):
        ref_out = ref(x)[-1]
    ref_out.sum().backward()
    assert torch.equal(out, ref_out)
    assert all(torch.equal(p.grad, q.grad) for p, q in zip(model.parameters(),
                                                           ref.parameters()))
    model.train()
    with torch.no_grad(), execution_mode(model, 'fast'):
        model(x)  # training-mode BN: batch statistics, not fused
    assert not fused_calls


def test_hooks_on_chained_layers_see_them_run(fused_calls):
    model = _calibrated_2m()
    x = torch.randn(1, 3, 64, 64)
    sepconv = next(m for n, m in model.named_modules() if n.endswith('sepconv'))
    seen = []
    handle = sepconv.pwconv1.register_forward_hook(lambda m, i, o: seen.append(o.clone()))
    try:
        with torch.no_grad(), execution_mode(model, 'plain'):
            ref = model(x)
        with torch.no_grad(), execution_mode(model, 'fast'):
            out = model(x)
    finally:
        handle.remove()
    assert len(seen) == 2 and torch.equal(seen[0], seen[1])  # the BN'd output, both paths
    assert all(torch.equal(a, b) for a, b in zip(ref, out))
    if _c_available():
        assert fused_calls  # the other blocks still fuse


def test_spikeyolo_inference_fuses_bn_and_equals_plain(fused_calls):
    from mmspike.models.backbones import SpikeYOLOBackbone
    torch.manual_seed(0)
    model = SpikeYOLOBackbone(dict(deepen_factor=0.33, widen_factor=0.125),
                              out_indices=(0, 1, 2, 3))
    with torch.no_grad():
        model.train()(torch.randn(2, 3, 64, 64))  # running statistics
    model.eval()
    x = torch.randn(1, 3, 64, 64) * 2
    outs = {}
    for mode in ('plain', 'fast'):
        with torch.no_grad(), execution_mode(model, mode):
            outs[mode] = model(x)
    assert all(torch.equal(p, f) for p, f in zip(outs['plain'], outs['fast']))
    if _c_available():  # separable convs (pw -> dw) and MS_AllConvBlock's conv pair
        assert len(fused_calls) >= 4, len(fused_calls)


def test_inference_keeps_no_code_bytes(monkeypatch):
    """Without a backward to follow, the fused neurons fire without writing code bytes (no
    autograd node asks for them); with gradients wanted they keep them."""
    codes = []
    original = kernels.fire_forward

    def recording(*args, **kwargs):
        codes.append(kwargs.get('code', 'full'))
        return original(*args, **kwargs)

    monkeypatch.setattr(kernels, 'fire_forward', recording)
    model = _calibrated_2m(channels_last=True)
    x = torch.randn(1, 3, 64, 64)
    with execution_mode(model, 'plain'), torch.no_grad():
        ref = model(x)
    del codes[:]
    with execution_mode(model, 'fast'):
        with torch.no_grad():
            out = model(x)
        assert codes and set(codes) == {None}, codes
        assert all(torch.equal(a, b) for a, b in zip(ref, out))
        del codes[:]
        out = model(x)  # eval, gradients wanted
        assert 'full' in codes
        out[-1].sum().backward()
