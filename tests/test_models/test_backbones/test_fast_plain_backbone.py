"""A whole E-SpikeFormer trains identically on the fast and the plain path; BN folding keeps the
function; observers (hooks) still see every neuron on the fast path."""
import copy

import pytest
import torch
from torch import nn

from mmspike.analysis.firing import NeuronFiringRecorder
from mmspike.models import execution_mode, fuse_conv_bn
from mmspike.models.backbones import ESpikeFormer
from mmspike.models.layers import SpikeConvBN, SpikeDrivenAttention, cheaper_attention_order


def _train_step(model, x, mode):
    """Outputs, input gradient, parameter gradients and buffers after one backward."""
    model = copy.deepcopy(model).train()
    x = x.detach().clone().requires_grad_()
    with execution_mode(model, mode):
        outs = model(x)
        loss = sum((o * torch.linspace(-1, 1, o.numel()).view_as(o)).sum() for o in outs)
        loss.backward()
    return (outs, x.grad, {n: p.grad for n, p in model.named_parameters()},
            dict(model.named_buffers()))


def _graph_nodes(t):
    seen, stack, names = set(), [t.grad_fn], []
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        names.append(type(fn).__name__)
        stack += [f for f, _ in fn.next_functions]
    return names


@pytest.mark.parametrize('channels_last', [False, True])
def test_espikeformer_fast_and_plain_train_identically(channels_last):
    torch.manual_seed(0)
    model = ESpikeFormer('2m', out_indices=(0, 1, 2, 3))
    x = torch.randn(2, 3, 64, 64)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    outs_p, xg_p, grads_p, bufs_p = _train_step(model, x, 'plain')
    outs_f, xg_f, grads_f, bufs_f = _train_step(model, x, 'fast')
    for o_p, o_f in zip(outs_p, outs_f):
        assert torch.equal(o_p.detach(), o_f.detach())
        assert o_p.stride() == o_f.stride()
    assert torch.equal(xg_p, xg_f)
    assert grads_p.keys() == grads_f.keys() and len(grads_p) > 300
    differing = [n for n in grads_p if not torch.equal(grads_p[n], grads_f[n])]
    assert not differing, differing[:5]
    assert all(torch.equal(bufs_p[n], bufs_f[n]) for n in bufs_p)  # BN running statistics
    # the paths really differ: fused spike convs and fused neurons only on the fast path
    nodes_f, nodes_p = _graph_nodes(outs_f[-1]), _graph_nodes(outs_p[-1])
    assert nodes_f.count('_SpikeConvsBackward') >= 40 and '_PlainFireBackward' not in nodes_f
    assert '_SpikeConvsBackward' not in nodes_p and nodes_p.count('_PlainFireBackward') >= 60


def test_fast_path_keeps_less_for_backward():
    torch.manual_seed(0)
    model = ESpikeFormer('2m').train()
    params = {p.data_ptr() for p in model.parameters()}
    x = torch.randn(2, 3, 64, 64)
    kept = {}
    for mode in ('plain', 'fast'):
        storages = {}

        def pack(t):
            if t.data_ptr() not in params:
                storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), \
                execution_mode(model, mode):
            model(x)
        kept[mode] = sum(storages.values())
    assert kept['fast'] < 0.5 * kept['plain'], kept


@pytest.mark.parametrize('channels_last', [False, True])
def test_kv_first_attention_output_identical_gradients_close(channels_last):
    torch.manual_seed(0)
    attn = SpikeDrivenAttention(32, num_heads=2, value_ratio=4)
    x = torch.randn(1, 2, 32, 8, 8) * 2  # N = 64 tokens: the d_v x d order is cheaper
    if channels_last:  # token-major heads (_kv_first_tokens), output kept channels-last
        attn = attn.to(memory_format=torch.channels_last)
        x = x[0].contiguous(memory_format=torch.channels_last)[None]
    assert cheaper_attention_order(64, 16, 64) == 'kv_first'
    outs_p, xg_p, grads_p, _ = _train_step(attn, x, 'plain')
    outs_f, xg_f, grads_f, _ = _train_step(attn, x, 'fast')
    assert torch.equal(outs_p, outs_f)  # spike products are exact in either order
    assert outs_f.permute(0, 1, 3, 4, 2).is_contiguous() == channels_last
    torch.testing.assert_close(xg_f, xg_p, rtol=1e-4, atol=1e-4 * xg_p.abs().max().item())
    for n in grads_p:
        g = grads_p[n]
        torch.testing.assert_close(grads_f[n], g, rtol=1e-4, atol=1e-4 * g.abs().max().item())
    assert not all(torch.equal(grads_p[n], grads_f[n]) for n in grads_p)  # rounding only


def test_observers_see_every_neuron_on_the_fast_path():
    torch.manual_seed(0)
    model = ESpikeFormer('2m').eval()
    x = torch.randn(1, 3, 64, 64)
    stats = {}
    for mode in ('plain', 'fast'):
        with torch.no_grad(), execution_mode(model, mode), NeuronFiringRecorder(model) as rec:
            out = model(x)[0]
        stats[mode] = (out, {k: (v.spikes, v.numel, v.calls) for k, v in rec.stats.items()})
    assert torch.equal(stats['plain'][0], stats['fast'][0])
    assert stats['plain'][1] == stats['fast'][1]
    assert all(calls == 1 for _, _, calls in stats['fast'][1].values())
    assert sum(s for s, _, _ in stats['fast'][1].values()) > 0


def _calibrated(model):
    model.train()
    with torch.no_grad():  # running statistics that are not the identity
        for _ in range(2):
            model(torch.randn(4, 3, 64, 64))
    return model.eval()


def test_fuse_conv_bn_keeps_the_function():
    torch.manual_seed(0)
    model = _calibrated(ESpikeFormer('2m', out_indices=(0, 1, 2, 3)))
    fused = copy.deepcopy(model)
    num_bn = sum(type(m) is nn.BatchNorm2d for m in model.modules())
    assert fuse_conv_bn(fused) == num_bn > 90
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(model(x), fused(x)):
            torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
        # layer by layer, on the same input: only float rounding differs
        for (name, m), f in zip(model.named_modules(), fused.modules()):
            if isinstance(m, SpikeConvBN):
                c_in = m.conv.in_channels
                t = torch.randn(1, 2, c_in, 9, 9) * 2
                torch.testing.assert_close(f(t), m(t), rtol=1e-5, atol=1e-5, msg=name)
    with pytest.raises(RuntimeError, match='call model.eval'):
        fuse_conv_bn(copy.deepcopy(model).train())


def test_fuse_conv_bn_leaves_padded_bn_of_repconv():
    torch.manual_seed(0)
    attn = SpikeDrivenAttention(16, num_heads=2, projection='repconv')
    attn.train()
    with torch.no_grad():
        attn(torch.randn(1, 4, 16, 5, 5))
    attn.eval()
    fused = copy.deepcopy(attn)
    # one per projection (RepConv conv2 -> bn2); bn1 pads and the outer BN follows no conv
    assert fuse_conv_bn(fused) == 4
    assert sum(type(m).__name__ == 'BNAndPad' for m in fused.modules()) == 4
    x = torch.randn(1, 2, 16, 5, 5) * 2
    with torch.no_grad():
        torch.testing.assert_close(fused(x), attn(x), rtol=1e-5, atol=1e-5)
