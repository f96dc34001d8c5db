"""SpikeSepConv, spike-driven attention (both evaluation orders), RepConv, MLP and the blocks."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmspike.models.layers import (BNAndPad, LinearPair, RepConv, SpikeConvBlock,
                                   SpikeDrivenAttention, SpikeMLP, SpikeSepConv,
                                   SpikeTransformerBlock, cheaper_attention_order, drop_path,
                                   spike_attention)
from mmspike.models.neurons import MultiSpike
from mmspike.registry import MODELS


def _spike_grid(*shape, D=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, D + 1, shape, generator=g).float() / D


def _conv_inputs(model, x):
    """Inputs of every Conv2d of ``model`` during one forward."""
    seen = {}
    hooks = [m.register_forward_pre_hook(lambda m, a, n=n: seen.setdefault(n, a[0].detach()))
             for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    out = model(x)
    for h in hooks:
        h.remove()
    return out, seen


def _is_spike(t, D=4):
    return bool(((t * D).round() == t * D).all() and t.min() >= 0 and t.max() <= 1)


def test_spike_attention_orders_equal_and_auto_picks_cheaper():
    q, k = _spike_grid(2, 3, 8, 50, 6, seed=1), _spike_grid(2, 3, 8, 50, 6, seed=2)
    v = _spike_grid(2, 3, 8, 50, 24, seed=3)
    # Multiples of 1/4 with small sums are exact in float32: the two orders agree bit for bit.
    qk_first = spike_attention(q, k, v, 'qk_first')
    kv_first = spike_attention(q, k, v, 'kv_first')
    assert torch.equal(qk_first, kv_first)
    ref = torch.einsum('...nd,...md,...me->...ne', q.double(), k.double(), v.double())
    assert torch.equal(kv_first.double(), ref)
    assert torch.equal(spike_attention(q, k, v), kv_first)
    # (QK^T)V costs N^2 (d + d_v), Q(K^T V) costs 2 N d d_v.
    assert cheaper_attention_order(50, 6, 24) == 'kv_first'   # 75000 vs 14400
    assert cheaper_attention_order(4, 64, 256) == 'qk_first'  # 5120 vs 131072
    assert cheaper_attention_order(10, 5, 5) == 'kv_first'    # tie 1000 == 1000 -> linear memory


def test_spike_attention_bad_arguments():
    q = torch.zeros(1, 4, 3)
    with pytest.raises(ValueError, match='order'):
        spike_attention(q, q, q, 'softmax')
    with pytest.raises(ValueError, match='same shape'):
        spike_attention(q, torch.zeros(1, 5, 3), q)


@pytest.mark.parametrize('projection', ['linear', 'repconv', 'linear_pair'])
def test_attention_module_order_invariant(projection):
    torch.manual_seed(0)
    attn = SpikeDrivenAttention(16, num_heads=4, value_ratio=4, projection=projection).eval()
    x = torch.randn(2, 3, 16, 5, 6) * 2
    outs = {}
    for order in ('qk_first', 'kv_first', 'auto'):
        attn.order = order
        outs[order] = attn(x)
    assert outs['qk_first'].shape == (2, 3, 16, 5, 6)
    assert torch.equal(outs['qk_first'], outs['kv_first'])
    assert torch.equal(outs['auto'], outs['kv_first'])


def test_attention_shapes_scale_and_spike_inputs():
    attn = SpikeDrivenAttention(32, num_heads=8, value_ratio=4)
    assert attn.scale == pytest.approx(2 * 4 ** -0.5)  # E-SpikeFormer: 2 / sqrt(d_head)
    assert attn.v_conv[0].weight.shape == (128, 32, 1, 1)
    assert attn.proj_conv[0].weight.shape == (32, 128, 1, 1)
    assert SpikeDrivenAttention(32, scale=0.125).scale == 0.125
    out, inputs = _conv_inputs(attn, torch.randn(1, 2, 32, 4, 4))
    assert out.shape == (1, 2, 32, 4, 4)
    assert len(inputs) == 4 and all(_is_spike(t) for t in inputs.values())


def test_attention_matches_hand_computation():
    """One head, identity 1x1 projections, eval BNs with unit statistics, integer spikes."""
    attn = SpikeDrivenAttention(2, num_heads=1, value_ratio=1, scale=0.5,
                                neuron=dict(type='MultiSpike', norm=1)).eval()
    for proj in (attn.q_conv, attn.k_conv, attn.v_conv, attn.proj_conv):
        proj[0].weight.data = torch.eye(2).view(2, 2, 1, 1)
    tokens = torch.tensor([[1., 0.], [2., 1.], [0., 3.]])  # N = 3 tokens, C = 2
    out = attn(tokens.t().reshape(1, 1, 2, 3, 1)).reshape(2, 3).t()
    # Q = K = V = S = tokens (the BN factor (1 + eps)^-0.5 does not change the rounding);
    # S S^T S = [[5, 2], [12, 14], [6, 30]], * 0.5 -> clamp to 4 -> round half up:
    expected = torch.tensor([[3., 1.], [4., 4.], [3., 4.]])
    assert torch.allclose(out, expected * (1 + 1e-5) ** -0.5)


def test_attention_bad_arguments():
    with pytest.raises(ValueError, match='must divide'):
        SpikeDrivenAttention(30, num_heads=8)
    with pytest.raises(ValueError, match='value_ratio'):
        SpikeDrivenAttention(32, value_ratio=1.5)
    with pytest.raises(ValueError, match='projection'):
        SpikeDrivenAttention(32, projection='conv3x3')
    with pytest.raises(ValueError, match=r'\[T, B, 32, H, W\]'):
        SpikeDrivenAttention(32)(torch.zeros(2, 32, 4, 4))


def test_sepconv_every_conv_sees_spikes():
    sep = SpikeSepConv(8, kernel_size=7)
    assert sep.pwconv1.conv.weight.shape == (16, 8, 1, 1)
    assert sep.dwconv.conv.weight.shape == (16, 1, 7, 7)
    assert isinstance(sep.dwconv.bn, nn.BatchNorm2d)
    out, inputs = _conv_inputs(sep, torch.randn(2, 3, 8, 9, 9))
    assert out.shape == (2, 3, 8, 9, 9)
    assert len(inputs) == 3 and all(_is_spike(t) for t in inputs.values())
    # Meta-SpikeFormer's variant: DW -> PW directly (no BN, no neuron).
    v2 = SpikeSepConv(8, spike_dwconv=False)
    assert isinstance(v2.dwconv.bn, nn.Identity) and isinstance(v2.pwconv2.neuron, nn.Identity)
    with pytest.raises(ValueError, match='odd kernel_size'):
        SpikeSepConv(8, kernel_size=4)


def test_bn_and_pad_equals_padded_conv_of_bn():
    """DW3x3(BNAndPad(y)) == DW3x3 with zero padding applied before BN (re-parameterisable)."""
    torch.manual_seed(0)
    bn = BNAndPad(4, pad=1)
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    bn.weight.data.uniform_(0.5, 2)
    bn.bias.data.uniform_(-1, 1)
    bn.eval()
    y = torch.randn(2, 4, 5, 5)
    out = bn(y)
    assert out.shape == (2, 4, 7, 7)
    plain = nn.BatchNorm2d(4).eval()
    plain.load_state_dict(bn.state_dict())
    assert torch.equal(out[:, :, 1:-1, 1:-1], plain(y))
    assert torch.allclose(out, plain(F.pad(y, [1, 1, 1, 1])), atol=1e-6)
    rep = RepConv(4, 6)
    assert rep(torch.randn(1, 4, 5, 5)).shape == (1, 6, 5, 5)


def test_linear_pair_and_mlp_shapes():
    pair = LinearPair(8, 12, 8)
    assert [m.weight.shape[:2] for m in (pair.conv1, pair.conv2)] == [(12, 8), (8, 12)]
    mlp = SpikeMLP(8)
    assert mlp.fc1.conv.weight.shape == (32, 8, 1, 1) and mlp.fc1.conv.bias is not None
    assert mlp(torch.randn(1, 2, 8, 3, 3)).shape == (1, 2, 8, 3, 3)


def test_blocks_residual_structure_and_registry():
    block = MODELS.build(dict(type='SpikeConvBlock', channels=8))
    assert isinstance(block, SpikeConvBlock) and block.sepconv is not None
    assert block.mlp.fc1.conv.weight.shape == (32, 8, 3, 3)
    # With zeroed final BNs both branches output 0 and the block is the identity.
    tb = SpikeTransformerBlock(16, num_heads=4, sepconv_kernel=3, pre_mixer=True,
                               layer_scale_init_value=1e-6).eval()
    for bn in (tb.sepconv.pwconv2.bn, tb.pre_mixer[1].module.bn2, tb.attn.proj_conv[1],
               tb.mlp.fc2.bn):
        nn.init.zeros_(bn.weight)
        nn.init.zeros_(bn.bias)
    x = torch.randn(2, 1, 16, 4, 4)
    assert torch.equal(tb(x), x)
    assert tb.layer_scale1.shape == (16, )
    assert float(tb.layer_scale1[0].detach()) == pytest.approx(1e-6)
    assert SpikeTransformerBlock(16, num_heads=4).layer_scale1 is None


def test_drop_path_drops_samples_not_time_steps():
    torch.manual_seed(0)
    x = torch.ones(3, 64, 2, 2)
    y = drop_path(x, 0.5, training=True)
    # Each sample is kept (scaled by 2) or dropped at every time step alike.
    assert torch.equal(y[0], y[1]) and torch.equal(y[1], y[2])
    assert set(y.unique().tolist()) == {0.0, 2.0}
    assert torch.equal(drop_path(x, 0.5, training=False), x)


def test_multispike_d8_attention_inputs():
    attn = SpikeDrivenAttention(16, num_heads=2, neuron=dict(type='MultiSpike', max_spikes=8))
    assert isinstance(attn.q_neuron, MultiSpike) and attn.q_neuron.max_spikes == 8
    _, inputs = _conv_inputs(attn, torch.randn(1, 1, 16, 3, 3) * 4)
    assert all(_is_spike(t, D=8) for t in inputs.values())


def test_spike_conv_trains_under_autocast():
    # the fused neuron+conv runs under autocast; its backward casts as autocast does
    from mmspike.models.layers import SpikeConvBN
    layer = SpikeConvBN(4, 4)
    x = (torch.randn(1, 2, 4, 8, 8) * 3).requires_grad_()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = layer(x)
    out.float().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert layer.conv.weight.grad is not None and layer.conv.weight.grad.abs().sum() > 0


@pytest.mark.parametrize('kind', ['conv', 'transformer'])
def test_inference_residuals_go_into_the_branch_output(kind):
    """Fast path, no gradient wanted, nobody watching: ``x + branch(x)`` is written into the
    branch's own output (no new tensor), the same bits as the plain path's new sum; with
    gradients wanted, on the plain path or with a hook on the branch, a new tensor."""
    from mmspike.models import execution_mode
    torch.manual_seed(0)
    block = (SpikeConvBlock(8) if kind == 'conv' else
             SpikeTransformerBlock(16, num_heads=4, sepconv_kernel=3)).eval()
    x = torch.randn(2, 1, 8 if kind == 'conv' else 16, 6, 6)
    x0 = x.clone()
    seen = []
    forward = block.mlp.forward

    def recording(inp):  # the last branch's output (an attribute, not a hook)
        out = forward(inp)
        seen.append(out)  # kept alive: its memory cannot be handed out again
        return out

    block.mlp.forward = recording
    with torch.no_grad():
        with execution_mode(block, 'plain'):
            ref = block(x)
        assert ref.data_ptr() != seen[-1].data_ptr()
        out = block(x)
        assert torch.equal(out, ref) and out.data_ptr() == seen[-1].data_ptr()
        handle = block.mlp.register_forward_hook(lambda m, i, o: None)
        assert block(x).data_ptr() != seen[-1].data_ptr()
        handle.remove()
    out = block(x)
    assert out.requires_grad and out.data_ptr() != seen[-1].data_ptr() and torch.equal(out, ref)
    assert torch.equal(x, x0)  # the input stream itself is never written
