"""SpikeFPNHead: mmseg FPNHead layout with an integer neuron before every conv, the time axis
(T=1 equivalence, mean of per-step logits), mmseg's loss/predict API, and argument errors."""
import pytest
import torch
from mmcv.cnn import ConvModule
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.models.decode_heads import FPNHead
from mmseg.models.utils import Upsample
from mmseg.registry import MODELS as MMSEG_MODELS
from mmseg.structures import SegDataSample
from torch import nn

from mmspike.segmentation.heads import SpikeFPNHead
from mmspike.models.necks.spike_fpn import SpikeConvModule
from mmspike.models.neurons import IntegerNeuron

STRIDES = (4, 8, 16, 16)


@pytest.fixture(autouse=True)
def mmseg_scope():
    init_default_scope('mmseg')


def _head(**kwargs):
    cfg = dict(in_channels=[6, 6, 6, 6], in_index=[0, 1, 2, 3], feature_strides=STRIDES,
               channels=8, num_classes=5, norm_cfg=dict(type='BN'), dropout_ratio=0.1)
    cfg.update(kwargs)
    return SpikeFPNHead(**cfg)


def _feats(T, B=2, size=32, C=6):
    # levels at strides 4/8/16/16 of a (4 * size)^2 image
    sizes = [size, size // 2, size // 4, size // 4]
    return tuple(torch.randn(T, B, C, s, s) * 2 for s in sizes)


def test_layout_mirrors_fpn_head():
    head = _head()
    stock = FPNHead(in_channels=[6, 6, 6, 6], in_index=[0, 1, 2, 3], feature_strides=STRIDES,
                    channels=8, num_classes=5)
    for spike_sh, stock_sh in zip(head.scale_heads, stock.scale_heads):
        convs = [m for m in spike_sh if isinstance(m, SpikeConvModule)]
        ups = [m for m in spike_sh.modules() if isinstance(m, Upsample)]
        assert len(convs) == sum(isinstance(m, ConvModule) for m in stock_sh)
        assert len(ups) == sum(isinstance(m, Upsample) for m in stock_sh)
        # integer neuron -> conv3x3 (no bias, BN follows)
        for c in convs:
            assert isinstance(c.neuron, IntegerNeuron) and c.neuron.max_spikes == 4
            assert c.conv.kernel_size == (3, 3) and c.conv.bias is None
            assert isinstance(c.norm, nn.BatchNorm2d)
    assert [len([m for m in sh if isinstance(m, SpikeConvModule)]) for sh in head.scale_heads] \
        == [1, 1, 2, 2]
    assert isinstance(head.out_neuron, IntegerNeuron)
    assert MMSEG_MODELS.get('mmspike.SpikeFPNHead') is SpikeFPNHead


def test_every_conv_is_fed_spikes():
    torch.manual_seed(0)
    # training mode: BN normalises every conv output, so each neuron fires somewhere
    head = _head(dropout_ratio=0.0).train()
    seen = {}

    def hook(module, args, _out):
        seen[module] = args[0].detach()

    convs = [m for m in head.modules() if isinstance(m, nn.Conv2d)]
    for c in convs:
        c.register_forward_hook(hook)
    out = head(_feats(T=2))
    assert out.shape == (2, 5, 32, 32)
    assert set(seen) == set(convs)
    for conv, x in seen.items():
        # scale-head convs see spikes s/D, s in 0..4; the classifier their mean over T=2
        step = 1 / 8 if conv is head.conv_seg else 1 / 4
        q = x / step
        assert torch.equal(q, q.round()) and x.min() >= 0 and x.max() <= 1
        assert (x > 0).any()


def test_time_axis():
    torch.manual_seed(0)
    head = _head().eval()
    feats = _feats(T=3)
    with torch.no_grad():
        out = head(feats)
        # MultiSpike has no leak and the classifier is linear: the output is the mean of the
        # logits of the single steps
        steps = [head(tuple(f[t:t + 1] for f in feats)) for t in range(3)]
        assert torch.allclose(out, torch.stack(steps).mean(0), atol=1e-5)
        # plain [B, C, H, W] maps are T = 1
        assert torch.equal(head(tuple(f[0] for f in feats)), steps[0])
    head_sum = _head(time_reduction='sum').eval()
    head_sum.load_state_dict(head.state_dict())
    with torch.no_grad():
        bias = head.conv_seg.bias.view(1, -1, 1, 1)
        assert torch.allclose(head_sum(feats) - bias, 3 * (out - bias), atol=1e-4)


def test_loss_and_predict_through_mmseg_api():
    torch.manual_seed(0)
    head = _head()
    feats = _feats(T=1, B=2)
    samples = []
    for _ in range(2):
        ds = SegDataSample()
        ds.gt_sem_seg = PixelData(data=torch.randint(0, 5, (1, 128, 128)))
        ds.set_metainfo(dict(img_shape=(128, 128), ori_shape=(128, 128), pad_shape=(128, 128)))
        samples.append(ds)
    losses = head.loss(feats, samples, train_cfg=dict())
    assert set(losses) == {'loss_ce', 'acc_seg'} and torch.isfinite(losses['loss_ce'])
    losses['loss_ce'].backward()
    first_conv = head.scale_heads[3][0].conv
    assert first_conv.weight.grad is not None and first_conv.weight.grad.abs().sum() > 0
    head.eval()
    logits = head.predict(feats, [dict(img_shape=(120, 100))], test_cfg=dict())
    assert logits.shape == (2, 5, 120, 100)


def test_bad_arguments():
    with pytest.raises(ValueError, match='act_cfg must be None'):
        _head(act_cfg=dict(type='ReLU'))
    with pytest.raises(ValueError, match='conv_cfg must be None'):
        _head(conv_cfg=dict(type='Conv2d'))
    with pytest.raises(ValueError, match='one entry per input level'):
        _head(feature_strides=(4, 8, 16))
    with pytest.raises(ValueError, match='smallest first'):
        _head(feature_strides=(8, 4, 16, 16))
    with pytest.raises(ValueError, match="time_reduction must be 'mean' or 'sum'"):
        _head(time_reduction='max')
    head = _head()
    with pytest.raises(ValueError, match=r'SpikeFPNHead input 0 expects 6 channels'):
        head(_feats(T=1, C=7))
    with pytest.raises(ValueError, match=r'SpikeFPNHead input 0 expects a \[T, B, C, H, W\]'):
        head(tuple(f[0, 0] for f in _feats(T=1)))
    feats = list(_feats(T=2))
    feats[1] = feats[1][:1]
    with pytest.raises(ValueError, match=r'disagree on \[T, B\]'):
        head(tuple(feats))
