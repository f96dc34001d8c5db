"""ESpikeFormer: parameter counts of the six upstream models, shapes, strides, T input, errors."""
import pytest
import torch
from torch import nn

from mmspike.models.backbones import ESpikeFormer
from mmspike.models.layers import SpikeConvBlock, SpikeTransformerBlock
from mmspike.models.neurons import MultiSpike
from mmspike.registry import MODELS

# Upstream totals with the 1000-class classifier(s) (head, plus head_kd for the large family).
UPSTREAM_PARAMS = {
    '2m': (2_702_048, 1), '5m': (5_105_608, 1), '10m': (10_023_112, 1), '19m': (18_987_504, 1),
    '83m': (83_015_952, 2), '173m': (171_740_714, 2),
}


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize('arch', list(UPSTREAM_PARAMS))
def test_param_counts_match_upstream(arch):
    expected, num_heads = UPSTREAM_PARAMS[arch]
    model = ESpikeFormer(arch=arch)
    c = model.channels[-1]
    total = _count(model) + num_heads * (c * 1000 + 1000)
    assert abs(total - expected) / expected < 0.005, (arch, total, expected)
    assert total == expected  # exact with the upstream layer shapes


@pytest.mark.parametrize('arch,channels,strides', [
    ('2m', (24, 48, 96, 128), (4, 8, 16, 16)),
    ('5m', (32, 64, 128, 192), (4, 8, 16, 16)),
])
def test_multiscale_shapes_and_true_strides(arch, channels, strides):
    model = ESpikeFormer(arch=arch, out_indices=(0, 1, 2, 3))
    assert model.out_channels == channels and model.out_strides == strides
    outs = model(torch.randn(2, 3, 64, 64))
    assert len(outs) == 4
    for out, c, s in zip(outs, channels, strides):
        assert out.shape == (1, 2, c, 64 // s, 64 // s)


def test_time_sequence_input_and_static_repeat():
    model = ESpikeFormer(arch='2m', T=3).eval()
    img = torch.randn(2, 3, 32, 48)
    (out, ) = model(img)
    assert out.shape == (3, 2, 128, 2, 3)
    # MultiSpike has no leak: a static image repeated over T gives the same map at every step.
    assert torch.equal(out[0], out[2])
    # A [T', B, C, H, W] event tensor keeps its own T' (not the configured T).
    events = torch.randn(5, 2, 3, 32, 48)
    (out_ev, ) = model(events)
    assert out_ev.shape == (5, 2, 128, 2, 3)
    assert torch.equal(out_ev[1], model(events[1])[0][0])


def test_large_family_layout():
    model = ESpikeFormer(arch='83m', out_indices=(0, 1, 2))
    assert model.out_strides == (4, 8, 16) and model.out_channels == (128, 256, 512)
    blocks = [m for m in model.stages[2] if isinstance(m, SpikeTransformerBlock)]
    assert len(blocks) == 12
    assert all(b.pre_mixer is not None and b.sepconv is None for b in blocks)
    assert float(blocks[0].layer_scale1.detach()[0]) == pytest.approx(1e-6)
    assert blocks[0].attn.scale == 0.125 and blocks[0].attn.value_ratio == 1
    # 173M: no pre-mixer; CNN blocks without SepConv and with biased 3x3 convs.
    large = ESpikeFormer(arch='173m')
    assert large.out_indices == (2, ) and large.out_channels == (768, )
    assert all(b.pre_mixer is None for b in large.stages[2] if isinstance(b, SpikeTransformerBlock))
    conv_block = large.stages[1][1]
    assert isinstance(conv_block, SpikeConvBlock) and conv_block.sepconv is None
    assert conv_block.mlp.fc1.conv.bias is not None
    assert large.stages[0][0].conv.in_channels == 3 and large.stages[0][0].conv.out_channels == 98
    outs = model(torch.randn(1, 3, 32, 32))
    assert [o.shape for o in outs] == [(1, 1, 128, 8, 8), (1, 1, 256, 4, 4), (1, 1, 512, 2, 2)]


def test_base_family_block_settings():
    model = ESpikeFormer(arch='10m')
    blocks = [m for m in model.modules() if isinstance(m, SpikeTransformerBlock)]
    assert len(blocks) == 8
    b = blocks[0]
    assert b.sepconv.dwconv.conv.kernel_size == (3, 3) and b.pre_mixer is None
    assert b.layer_scale1 is None
    assert b.attn.value_ratio == 4 and b.attn.scale == pytest.approx(2 * (192 // 8) ** -0.5)
    conv_blocks = [m for m in model.modules() if isinstance(m, SpikeConvBlock)]
    assert len(conv_blocks) == 4
    assert conv_blocks[0].sepconv.dwconv.conv.kernel_size == (7, 7)


def test_every_conv_but_the_stem_is_fed_by_spikes():
    model = ESpikeFormer(arch='2m', out_indices=(3, ))
    inputs = {}
    hooks = [m.register_forward_pre_hook(lambda m, a, n=n: inputs.setdefault(n, a[0].detach()))
             for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    model(torch.randn(1, 3, 32, 32) * 3)
    for h in hooks:
        h.remove()
    assert len(inputs) == sum(isinstance(m, nn.Conv2d) for m in model.modules())
    for name, x in inputs.items():
        if name == 'stages.0.0.conv':
            continue  # the stem sees the real-valued image
        assert ((x * 4).round() == x * 4).all() and x.min() >= 0 and x.max() <= 1, name


def test_neuron_config_d8_and_registry_build():
    model = MODELS.build(dict(type='ESpikeFormer', arch='2m',
                              neuron=dict(type='MultiSpike', max_spikes=8)))
    neurons = [m for m in model.modules() if isinstance(m, MultiSpike)]
    assert neurons and all(n.max_spikes == 8 and n.norm == 8 for n in neurons)


def test_frozen_stages_and_drop_path():
    model = ESpikeFormer(arch='2m', frozen_stages=1, drop_path_rate=0.2)
    model.train()
    assert not any(p.requires_grad for s in model.stages[:2] for p in s.parameters())
    assert all(p.requires_grad for p in model.stages[2].parameters())
    assert not model.stages[1][1].mlp.fc1.bn.training and model.stages[2][1].mlp.fc1.bn.training
    rates = [b.drop_path.drop_prob for b in model.modules() if isinstance(b, SpikeTransformerBlock)
             and not isinstance(b.drop_path, nn.Identity)]
    assert rates[-1] == pytest.approx(0.2) and len(rates) == 7  # the first block has rate 0


def test_layer_depth_for_layer_decay():
    model = ESpikeFormer(arch='83m')
    assert model.get_layer_depth('backbone.stages.0.0.conv.weight', 'backbone.') == (0, 14)
    assert model.get_layer_depth('backbone.stages.2.0.conv.weight', 'backbone.') == (1, 14)
    assert model.get_layer_depth('backbone.stages.2.1.attn.q_conv.1.weight', 'backbone.') == (1, 14)
    assert model.get_layer_depth('backbone.stages.2.12.mlp.fc2.bn.bias', 'backbone.') == (12, 14)
    assert model.get_layer_depth('head.fc.weight', 'backbone.') == (13, 14)
    base = ESpikeFormer(arch='2m')  # 6 + 2 Transformer blocks, counted across stages
    assert base.get_layer_depth('stages.3.2.attn.q_conv.0.weight') == (8, 10)


def test_layer_scale_override():
    model = ESpikeFormer(arch='2m', layer_scale_init_value=1e-5)
    assert model.stages[3][1].layer_scale1 is not None
    model = ESpikeFormer(arch=dict(ESpikeFormer.arch_settings['83m'], channels=(16, 32, 64)),
                         layer_scale_init_value=0)
    assert model.stages[2][1].layer_scale1 is None


def test_arch_dict_merges_nested_defaults():
    model = ESpikeFormer(arch=dict(channels=(8, 16, 32), depths=(1, 1, 1), strides=(4, 2, 2),
                                   transformer_block=dict(num_heads=4)), out_indices=(0, 1, 2))
    assert model.stages[2][1].attn.num_heads == 4
    assert model.stages[2][1].attn.value_ratio == 4  # kept from the base family
    assert model.out_strides == (4, 8, 16)


@pytest.mark.parametrize('kwargs,match', [
    (dict(arch='7m'), 'unknown arch'),
    (dict(arch=dict(channels=(8, 16), depths=(1, 1))), 'lacks'),
    (dict(arch=dict(channels=(8, 16), depths=(1, ), strides=(4, 2))), 'one entry per stage'),
    (dict(arch=dict(channels=(8, 16), depths=(1, 1), strides=(2, 2))), 'strides'),
    (dict(arch=dict(channels=(8, 16), depths=(1, 1), strides=(4, 2), width=3)), 'unknown keys'),
    (dict(arch='2m', out_indices=(4, )), 'out of range'),
    (dict(arch=dict(ESpikeFormer.arch_settings['83m'], channels=(8, 16, 32)), out_indices=(3, )),
     'out of range'),
    (dict(arch='2m', frozen_stages=4), 'frozen_stages'),
    (dict(arch='2m', T=0), 'T must be'),
    (dict(arch='2m', layer_scale_init_value=-1.0), 'layer_scale_init_value'),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ESpikeFormer(**kwargs)


def test_bad_inputs():
    model = ESpikeFormer(arch='2m')
    with pytest.raises(ValueError, match='3 input channels'):
        model(torch.randn(1, 2, 32, 32))
    with pytest.raises(ValueError, match=r'\[B, C, H, W\] image or a \[T, B, C, H, W\]'):
        model(torch.randn(3, 32, 32))


def test_spike_driven_inference_gives_the_same_output():
    """Integer spikes emitted as D binary spikes over virtual steps: same downstream result."""
    from mmspike.models import spike_driven
    model = ESpikeFormer(arch='2m', out_indices=(0, 3)).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)
        with spike_driven(model):
            binary = model(x)
            trains = [m.last_binary for m in model.modules() if isinstance(m, MultiSpike)]
    assert all(torch.equal(a, b) for a, b in zip(ref, binary))
    # Every neuron emitted a binary train over T * D = 4 virtual steps.
    assert trains and all(t.shape[0] == 4 and set(t.unique().tolist()) <= {0.0, 1.0}
                          for t in trains)
    assert not any(m.spike_driven for m in model.modules() if isinstance(m, MultiSpike))
