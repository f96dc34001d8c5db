"""MetaSpikeFormer (Spike-Driven Transformer V2): parameter counts, LIF neurons, RepConv."""
import pytest
import torch

from mmspike.models.backbones import ESpikeFormer, MetaSpikeFormer
from mmspike.models.layers import RepConv, SpikeTransformerBlock
from mmspike.models.neurons import LIF, MultiSpike

# Upstream metaspikformer models (1000-class head, no KD head), counted from the V2 code.
UPSTREAM_PARAMS = {'15m': 15_112_208, '31m': 31_333_864, '55m': 55_350_248}


@pytest.mark.parametrize('arch', list(UPSTREAM_PARAMS))
def test_param_counts_match_upstream(arch):
    model = MetaSpikeFormer(arch=arch)
    total = sum(p.numel() for p in model.parameters()) + model.channels[-1] * 1000 + 1000
    assert total == UPSTREAM_PARAMS[arch]


def test_meta_blocks_and_neurons():
    model = MetaSpikeFormer(arch='15m', T=2, out_indices=(0, 1, 2, 3))
    assert isinstance(model, ESpikeFormer) and model.out_strides == (4, 8, 16, 16)
    neurons = [m for m in model.modules() if isinstance(m, (LIF, MultiSpike))]
    assert neurons and all(isinstance(n, LIF) for n in neurons)
    block = next(m for m in model.modules() if isinstance(m, SpikeTransformerBlock))
    assert block.sepconv is None and block.pre_mixer is None
    assert isinstance(block.attn.q_conv[0], RepConv) and block.attn.scale == 0.125
    assert block.attn.attn_neuron.v_threshold == 0.5 and block.attn.q_neuron.v_threshold == 1.0
    # Meta-SpikeFormer's SepConv: no BN / neuron between the depthwise and the last conv.
    sep = model.stages[0][1].sepconv
    assert isinstance(sep.dwconv.bn, torch.nn.Identity)
    outs = model(torch.randn(1, 3, 32, 32))
    assert [o.shape for o in outs] == [(2, 1, 64, 8, 8), (2, 1, 128, 4, 4), (2, 1, 256, 2, 2),
                                       (2, 1, 360, 2, 2)]
    # LIF integrates over time: the two steps of a repeated image differ.
    assert not torch.equal(outs[-1][0], outs[-1][1])


def test_bad_arch():
    with pytest.raises(ValueError, match="choose from \\['15m', '31m', '55m'\\]"):
        MetaSpikeFormer(arch='10m')
