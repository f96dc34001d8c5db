"""mmspike's one input-layout rule (mmspike.models.layers.time): 5-D = [T, B, C, H, W], 4-D =
[B, C, H, W] as one step, tokens only on request, anything else an error naming the module."""
import pytest
import torch

from mmspike.models.layers import as_time_major
from mmspike.models.necks import SpikeFPN, SpikeGlobalAveragePooling, SpikeYOLOPAN


def test_as_time_major():
    x = torch.randn(2, 3, 4, 5)
    assert as_time_major(x, 'm').shape == (1, 2, 3, 4, 5)
    assert as_time_major(x[None].expand(2, -1, -1, -1, -1), 'm', channels=3).shape[0] == 2
    with pytest.raises(ValueError, match=r"m expects a \[T, B, C, H, W\] or \[B, C, H, W\] map, "
                       r"got shape \(3, 4, 5\).*input_layout='tokens'"):
        as_time_major(x[0], 'm')
    with pytest.raises(ValueError, match=r'm expects 7 channels .* got shape \(1, 2, 3, 4, 5\)'):
        as_time_major(x, 'm', channels=7)


def test_global_average_pooling_reads_4d_as_a_map_and_tokens_only_when_told():
    torch.manual_seed(0)
    gap = SpikeGlobalAveragePooling()
    maps = torch.randn(3, 2, 8, 4, 4)  # [T, B, C, H, W]
    out = gap(maps)[0]
    torch.testing.assert_close(out, maps.mean((0, 3, 4)))
    # a plain [B, C, H, W] map is one time step: the same as the 5-D map with T = 1
    torch.testing.assert_close(gap(maps[0])[0], gap(maps[:1])[0])
    assert gap(maps[0])[0].shape == (2, 8)  # [B, C], not the old [T, B, N, C] reading
    tokens = torch.randn(3, 2, 16, 8)  # [T, B, N, C]
    tok = SpikeGlobalAveragePooling(input_layout='tokens')
    torch.testing.assert_close(tok(tokens)[0], tokens.mean((0, 2)))
    torch.testing.assert_close(tok(tokens[0])[0], tokens[0].mean(1))
    with pytest.raises(ValueError, match='token sequences need input_layout'):
        gap(tokens[0])  # 3-D: not a map
    with pytest.raises(ValueError, match=r"input_layout='tokens'\) expects \[T, B, N, C\]"):
        tok(maps)
    with pytest.raises(ValueError, match="input_layout must be one of"):
        SpikeGlobalAveragePooling(input_layout='TBNC')


def test_fpn_and_pan_read_4d_as_one_step_and_check_channels():
    torch.manual_seed(0)
    fpn = SpikeFPN(in_channels=[4, 8], out_channels=4, num_outs=2,
                   time_reduction=None).eval()
    feats = [torch.randn(2, 4, 8, 8), torch.randn(2, 8, 4, 4)]
    with torch.no_grad():
        plain = fpn(feats)
        seq = fpn([f[None] for f in feats])
    for a, b in zip(plain, seq):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(ValueError, match=r'SpikeFPN level 1 expects 8 channels'):
        fpn([feats[0], torch.randn(2, 4, 8, 8)])  # e.g. tokens [T, B, N, C] with N != C
    pan = SpikeYOLOPAN(in_channels=(4, 8, 8), kernel_size=3).eval()
    feats = [torch.randn(1, 4, 8, 8), torch.randn(1, 8, 4, 4), torch.randn(1, 8, 2, 2)]
    with torch.no_grad():
        for a, b in zip(pan(feats), pan([f[None] for f in feats])):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(ValueError, match=r'SpikeYOLOPAN level 0 expects a \[T, B, C, H, W\]'):
        pan([feats[0][0]] + feats[1:])
