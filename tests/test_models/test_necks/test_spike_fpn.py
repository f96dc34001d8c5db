"""SpikeFPN: pyramid shapes and true strides, spikes into every conv, time reduction, bad input."""
import pytest
import torch
from torch import nn

from mmspike.models.necks import SpikeFPN
from mmspike.registry import MODELS

# E-SpikeFormer 10M-like features: strides 4/8/16/16 (stage 4 keeps stride 16)
CHANNELS = [8, 16, 24, 32]
STRIDES = [4, 8, 16, 16]


def features(T=1, B=2, size=64, channels=CHANNELS, strides=STRIDES, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(T, B, c, size // s, size // s, generator=g) * 2
            for c, s in zip(channels, strides)]


def test_two_stage_pyramid_keeps_true_strides():
    fpn = SpikeFPN(CHANNELS, 16, num_outs=5, in_strides=STRIDES)
    outs = fpn(features())
    assert fpn.out_strides == (4, 8, 16, 16, 32)
    # every output is an ordinary [B, C, H, W] map at exactly input_size / stride
    assert [tuple(o.shape) for o in outs] == [(2, 16, 64 // s, 64 // s) for s in fpn.out_strides]


def test_one_stage_extra_convs_on_input():
    fpn = SpikeFPN(CHANNELS[1:], 16, num_outs=5, add_extra_convs='on_input',
                   in_strides=STRIDES[1:])
    outs = fpn(features()[1:])
    assert fpn.out_strides == (8, 16, 16, 32, 64)
    assert [tuple(o.shape[-2:]) for o in outs] == [(8, 8), (4, 4), (4, 4), (2, 2), (1, 1)]
    # the first extra conv reads the last *input* (32 channels), the next one the previous output
    assert fpn.extra_convs[0].conv.in_channels == 32 and fpn.extra_convs[1].conv.in_channels == 16


@pytest.mark.parametrize('source', ['on_lateral', 'on_output'])
def test_extra_conv_sources(source):
    fpn = SpikeFPN(CHANNELS, 16, num_outs=6, add_extra_convs=source, start_level=1,
                   in_strides=STRIDES)
    outs = fpn(features())
    assert fpn.out_strides == (8, 16, 16, 32, 64, 128)
    assert len(outs) == 6 and all(c.conv.in_channels == 16 for c in fpn.extra_convs)


def test_every_conv_receives_integer_spikes():
    fpn = SpikeFPN(CHANNELS, 16, num_outs=5, add_extra_convs='on_output')
    seen = []

    def check(module, args):
        x = args[0]
        seen.append(module)
        assert torch.equal(x, x.round()) and x.min() >= 0 and x.max() <= 4, \
            'a conv of SpikeFPN received non-spike input'

    for m in fpn.modules():
        if isinstance(m, nn.Conv2d):
            m.register_forward_pre_hook(check)
    fpn(features())
    assert len(seen) == 4 + 4 + 1  # laterals, outputs, one extra conv


def test_output_is_the_mean_of_the_time_steps():
    fpn = SpikeFPN(CHANNELS, 16, num_outs=5)
    x = features(T=3)
    outs = fpn(x)
    per_step = [fpn([f[t:t + 1] for f in x]) for t in range(3)]
    for level, o in enumerate(outs):
        expected = torch.stack([p[level] for p in per_step]).mean(0)
        torch.testing.assert_close(o, expected)
    # T kept for a spiking head, summed on request
    kept = SpikeFPN(CHANNELS, 16, num_outs=5, time_reduction=None)
    kept.load_state_dict(fpn.state_dict())
    assert kept(x)[0].shape == (3, 2, 16, 16, 16)
    torch.testing.assert_close(kept(x)[0].mean(0), outs[0])


def test_static_maps_of_a_non_spiking_backbone_are_one_time_step():
    fpn = SpikeFPN(CHANNELS, 16, num_outs=5)
    x = features(T=1)
    for a, b in zip(fpn([f[0] for f in x]), fpn(x)):
        torch.testing.assert_close(a, b)


def test_registered_and_built_from_mmdet_scope():
    from mmdet.registry import MODELS as MMDET_MODELS
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmdet'):
        fpn = MMDET_MODELS.build(dict(type='mmspike.SpikeFPN', in_channels=CHANNELS,
                                      out_channels=8, num_outs=5, norm_cfg=dict(type='BN')))
    assert isinstance(fpn, SpikeFPN) and MODELS.get('SpikeFPN') is SpikeFPN
    assert isinstance(fpn.fpn_convs[0].norm, nn.BatchNorm2d) and fpn.fpn_convs[0].conv.bias is None


def test_bad_arguments_and_inputs_are_named():
    with pytest.raises(ValueError, match='num_outs=2 is fewer than the 4 input levels'):
        SpikeFPN(CHANNELS, 8, num_outs=2)
    with pytest.raises(ValueError, match='add_extra_convs must be'):
        SpikeFPN(CHANNELS, 8, num_outs=5, add_extra_convs='on_nothing')
    with pytest.raises(ValueError, match='in_strides must not decrease'):
        SpikeFPN(CHANNELS, 8, num_outs=5, in_strides=[4, 16, 8, 16])
    with pytest.raises(ValueError, match="time_reduction must be 'mean', 'sum' or None"):
        SpikeFPN(CHANNELS, 8, num_outs=5, time_reduction='max')
    fpn = SpikeFPN(CHANNELS, 8, num_outs=5)
    with pytest.raises(ValueError, match='built for 4 input levels, got 3'):
        fpn(features()[:3])
    bad = features()
    bad[1] = bad[1][:, :, :5]
    with pytest.raises(ValueError, match=r'SpikeFPN level 1 expects 16 channels'):
        fpn(bad)
