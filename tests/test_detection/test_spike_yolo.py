"""SpikeYOLO backbone and PAN: upstream parameter counts, depth/width scaling, shapes and strides,
spike-driven equivalence."""
import pytest
import torch

from mmspike.models import set_spike_driven
from mmspike.models.backbones import SpikeYOLOBackbone
from mmspike.models.backbones.spike_yolo import scale_depth
from mmspike.detection.heads import SpikeYOLOHead
from mmspike.models.layers import MSAllConvBlock, MSConvBlock, SpikeSPPF
from mmspike.models.necks import SpikeYOLOPAN

UPSTREAM_S = 23_153_024  # SpikeYOLO snn_yolov8.yaml scale s, 80 classes (upstream issue #21)
UPSTREAM_S_DFL = 16  # upstream's frozen DFL conv weights; a buffer here


def count(*modules):
    return sum(p.numel() for m in modules for p in m.parameters())


def build(arch, out5_mlp_ratio=1, num_classes=80):
    backbone = SpikeYOLOBackbone(arch)
    neck = SpikeYOLOPAN(backbone.out_channels, out5_mlp_ratio=out5_mlp_ratio)
    head = SpikeYOLOHead(num_classes, neck.out_channels, strides=backbone.out_strides)
    return backbone, neck, head


def test_scale_s_matches_upstream_parameter_count():
    backbone, neck, head = build('s')
    n = count(backbone, neck, head)
    assert abs(n - UPSTREAM_S) / UPSTREAM_S < 0.005
    # exact: the same layers as upstream, less the 16 fixed DFL weights kept as a buffer
    assert n == UPSTREAM_S - UPSTREAM_S_DFL
    assert count(backbone, neck) == 21_006_016  # upstream without its detect head
    assert head.proj.tolist() == list(range(16)) and 'proj' not in dict(head.named_parameters())


@pytest.mark.parametrize('arch,ratio,millions', [('n', 1, 13.2), ('m', 2, 48), ('l', 2, 69)])
def test_other_scales_match_upstream_sizes(arch, ratio, millions):
    # upstream quotes these rounded ("13.2M", "48M", "69M"); m and l use the P5 MLP ratio 2
    n = count(*build(arch, ratio))
    assert abs(n / 1e6 - millions) / millions < 0.01


def test_depth_and_width_scaling():
    assert [scale_depth(n, 0.33) for n in (3, 6, 9, 3)] == [1, 2, 3, 1]
    # Python rounds half to even, as upstream's parser: 9 x 0.5 -> 4, 3 x 0.5 -> 2
    assert [scale_depth(n, 0.5) for n in (3, 6, 9, 3)] == [2, 3, 4, 2]
    m = SpikeYOLOBackbone('m', out_indices=(0, 1, 2, 3))
    assert m.out_channels == (80, 160, 320, 640) and m.out_strides == (4, 8, 16, 32)
    blocks = [sum(isinstance(b, (MSConvBlock, MSAllConvBlock)) for b in s) for s in m.stages]
    assert blocks == [2, 3, 4, 2]
    assert isinstance(m.stages[0][1], MSAllConvBlock) and isinstance(m.stages[2][1], MSConvBlock)
    assert isinstance(m.stages[3][-1], SpikeSPPF)
    # the stem conv sees the real-valued image: no neuron, a 7x7 stride-4 conv with bias
    stem = m.stages[0][0]
    assert isinstance(stem.neuron, torch.nn.Identity)
    assert stem.conv.kernel_size == (7, 7) and stem.conv.stride == (4, 4)
    custom = SpikeYOLOBackbone(dict(deepen_factor=0.33, widen_factor=0.25))
    assert custom.out_channels == (64, 128, 256)


def test_backbone_and_pan_shapes_and_strides():
    backbone = SpikeYOLOBackbone(dict(deepen_factor=0.33, widen_factor=0.125))
    neck = SpikeYOLOPAN(backbone.out_channels)
    x = torch.rand(2, 3, 96, 128)
    feats = backbone(x)
    assert [tuple(f.shape) for f in feats] == [
        (1, 2, c, 96 // s, 128 // s) for c, s in zip(backbone.out_channels, backbone.out_strides)]
    outs = neck(feats)
    assert neck.out_channels == backbone.out_channels == (32, 64, 128)
    assert [tuple(o.shape) for o in outs] == [tuple(f.shape) for f in feats]
    # event input [T, B, C, H, W] keeps its T through backbone and neck
    outs = neck(backbone(torch.rand(3, 1, 3, 64, 64)))
    assert [o.shape[:2] for o in outs] == [(3, 1)] * 3


def test_spike_driven_mode_gives_the_same_features():
    backbone = SpikeYOLOBackbone(dict(deepen_factor=0.33, widen_factor=0.125)).eval()
    neck = SpikeYOLOPAN(backbone.out_channels).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        ref = neck(backbone(x))
        assert set_spike_driven(backbone) > 0 and set_spike_driven(neck) > 0
        spk = neck(backbone(x))
    for a, b in zip(ref, spk):
        torch.testing.assert_close(a, b)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="unknown arch 'xl' for SpikeYOLO"):
        SpikeYOLOBackbone('xl')
    with pytest.raises(ValueError, match='lacks'):
        SpikeYOLOBackbone(dict(widen_factor=0.5))
    with pytest.raises(ValueError, match='three inputs'):
        SpikeYOLOPAN([8, 16])
    neck = SpikeYOLOPAN([8, 16, 32])
    with pytest.raises(ValueError, match=r'SpikeYOLOPAN level 1 expects 16 channels'):
        neck([torch.rand(1, 1, 8, 8, 8), torch.rand(1, 1, 8, 4, 4), torch.rand(1, 1, 32, 2, 2)])
