"""An empty batch (B = 0) runs through spike-driven attention and a whole backbone instead of
failing with an ambiguous reshape (issue 17 item 6)."""
import pytest
import torch

from mmspike.models.execution import execution_mode
from mmspike.models.layers.attention import SpikeDrivenAttention


@pytest.mark.parametrize('path,order', [('fast', 'qk_first'), ('fast', 'kv_first'),
                                        ('plain', 'auto')])
@pytest.mark.parametrize('T', [1, 2])
def test_attention_empty_batch(path, order, T):
    attn = SpikeDrivenAttention(channels=32, num_heads=4, order=order)
    with execution_mode(attn, path):
        out = attn(torch.randn(T, 0, 32, 4, 5))
        assert out.shape == (T, 0, 32, 4, 5)
        # same module, a real batch: unchanged behaviour
        assert attn(torch.randn(T, 2, 32, 4, 5)).shape == (T, 2, 32, 4, 5)
        # channels-last maps take the token-major route of the fast kv-first order
        x = torch.randn(T * 0, 32, 4, 5).contiguous(memory_format=torch.channels_last)
        assert attn(x.view(T, 0, 32, 4, 5)).shape == (T, 0, 32, 4, 5)


@pytest.mark.parametrize('path', ['fast', 'plain'])
def test_backbone_empty_batch(path):
    from mmspike.models.backbones import ESpikeFormer
    model = ESpikeFormer(arch='2m', T=1).eval()
    with execution_mode(model, path), torch.no_grad():
        outs = model(torch.randn(0, 3, 32, 32))
        full = model(torch.randn(2, 3, 32, 32))
    assert [o.shape[1] for o in outs] == [0] * len(outs)
    assert [o.shape[2:] for o in outs] == [f.shape[2:] for f in full]
