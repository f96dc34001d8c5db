"""The fused spike-conv under autocast (issue 13): the ``--amp`` training path keeps its memory
saving. Compared with the plain composition under the same autocast: conv outputs and gradients
equal (the same ATen kernels on the same values in the autocast dtype), spikes identical, and
backward keeps one byte per input element (uint8 code) where the plain path keeps the float
membrane and a low-precision copy of the spikes per conv."""
import pytest
import torch
from torch import nn

from mmspike.models import execution_mode
from mmspike.models.layers import spike_convs
from mmspike.models.neurons import MultiSpike, kernels


def _run(mode, dtype, x0, convs, neuron):
    x = x0.clone().requires_grad_()
    for c in convs:
        c.zero_grad(set_to_none=True)
    saved = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        with torch.autocast('cpu', dtype=dtype), execution_mode(neuron, mode):
            if mode == 'fast':
                outs = spike_convs(x, neuron, convs)
                assert outs is not None, 'the fusion must run under autocast'
            else:
                s = neuron(x).flatten(0, 1)
                outs = tuple(c(s) for c in convs)
    g = torch.Generator().manual_seed(3)
    loss = sum((o.float() * torch.randn(o.shape, generator=g)).sum() for o in outs)
    loss.backward()
    grads = [x.grad] + [p.grad for c in convs for p in (c.weight, c.bias)]
    return outs, grads, saved


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_fused_spike_convs_under_autocast_equal_plain(dtype):
    torch.manual_seed(0)
    neuron = MultiSpike(max_spikes=4, norm=3.0)  # an inexact norm: spikes k/3
    convs = [nn.Conv2d(8, 16, 3, padding=1), nn.Conv2d(8, 4, 1)]  # two convs share the spikes
    x0 = torch.randn(1, 2, 8, 7, 7) * 3
    fast, fgrads, fsaved = _run('fast', dtype, x0, convs, neuron)
    plain, pgrads, psaved = _run('plain', dtype, x0, convs, neuron)
    for f, p in zip(fast, plain):
        assert f.dtype == p.dtype == dtype
        torch.testing.assert_close(f, p, rtol=0, atol=0)
    for f, p in zip(fgrads, pgrads):
        assert f.dtype == p.dtype == torch.float32  # gradients in the parameters' dtype
        # bitwise: the backward repeats autocast's casts around the same ATen kernels
        torch.testing.assert_close(f, p, rtol=0, atol=0)
    n = x0.numel()
    # fast: the only activation-sized saved tensor is the one-byte code; plain: float membrane
    fact = [t for t in fsaved if t.numel() == n]
    assert [t.dtype for t in fact] == [torch.uint8], [t.dtype for t in fsaved]
    pact = [t for t in psaved if t.numel() == n]
    assert torch.float32 in [t.dtype for t in pact] and len(pact) >= 2
    # spikes identical: the code's counts are the plain neuron's integer spikes
    with execution_mode(neuron, 'plain'), torch.no_grad():
        spikes = neuron(x0)
    decoded = kernels.decode_spikes(fact[0], 3.0, torch.float32).view_as(x0)
    assert torch.equal(decoded, spikes)
    counts = (fact[0] & kernels.COUNT_BITS).float().view_as(x0)
    assert torch.equal(counts, torch.round(spikes * 3.0))


def test_autocast_saved_bytes_fast_vs_plain():
    """Activation bytes kept for backward by one neuron -> two convs step under bf16 autocast
    (weights excluded): 1 byte per element on the fast path; 4 (fp32 membrane) + 2 per conv
    (bf16 spikes) on the plain path."""
    neuron = MultiSpike()
    convs = [nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 8, 1)]
    x0 = torch.randn(1, 2, 8, 16, 16)

    def act_bytes(saved):
        seen, total = set(), 0
        for t in saved:
            if t.numel() == x0.numel() and t.data_ptr() not in seen:
                seen.add(t.data_ptr())
                total += t.numel() * t.element_size()
        return total

    fast = act_bytes(_run('fast', torch.bfloat16, x0, convs, neuron)[2])
    plain = act_bytes(_run('plain', torch.bfloat16, x0, convs, neuron)[2])
    assert fast == x0.numel()
    assert plain == x0.numel() * (4 + 2 * len(convs)), plain
