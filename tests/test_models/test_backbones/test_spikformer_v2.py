"""SpikformerV2: SCS stem + SSA encoder shapes, strides, time steps and arch errors."""
import pytest
import torch
from torch import nn

from mmspike.models.backbones import SpikformerV2
from mmspike.models.layers import SpikeTransformerBlock
from mmspike.models.neurons import LIF


def test_shapes_strides_and_time_steps():
    model = SpikformerV2(arch='8-384', T=2, out_indices=(0, 1, 2, 3, 4))
    assert model.out_strides == (2, 4, 8, 16, 16)
    assert model.out_channels == (48, 96, 192, 384, 384)
    outs = model(torch.randn(2, 3, 64, 64))
    for out, c, s in zip(outs, model.out_channels, model.out_strides):
        assert out.shape == (2, 2, c, 64 // s, 64 // s)
    (ev, ) = SpikformerV2(arch='8-384', T=4)(torch.randn(3, 1, 3, 32, 32))
    assert ev.shape == (3, 1, 384, 2, 2)


def test_scs_and_ssa_layout():
    model = SpikformerV2(arch='8-512')
    assert model.T == 4
    stem = model.stages[0][0]
    assert stem.conv.kernel_size == (2, 2) and stem.conv.stride == (2, 2)
    assert isinstance(stem.neuron, nn.Identity)  # real-valued image into the first conv
    blocks = [m for m in model.stages[4] if isinstance(m, SpikeTransformerBlock)]
    assert len(blocks) == 8
    attn = blocks[0].attn
    assert attn.num_heads == 8 and attn.scale == 0.125 and attn.value_ratio == 1
    assert attn.proj_conv[0].bias is not None and attn.q_conv[0].bias is None
    assert isinstance(attn.q_neuron, LIF) and attn.attn_neuron.v_threshold == 0.5
    params = sum(p.numel() for p in model.parameters()) + 512 * 1000 + 1000
    assert 30e6 < params < 35e6  # Spikformer V1-8-512 has 29.7M; the SCS adds conv blocks


@pytest.mark.parametrize('arch,match', [
    ('8-1024', 'unknown arch'),
    (dict(embed_dims=100, depth=2), 'multiple of 8'),
    (dict(embed_dims=96, depth=2, num_heads=5), 'must divide'),
    (dict(embed_dims=96), 'lacks'),
])
def test_bad_arch(arch, match):
    with pytest.raises(ValueError, match=match):
        SpikformerV2(arch=arch)
