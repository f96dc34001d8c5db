"""SpikeYOLO's spiking meta blocks (Luo et al., ECCV 2024) on ``[T, B, C, H, W]``.

Every convolution is fed by a neuron (spikes in, membrane potential out); residual sums are taken on
the membrane potential. The re-parameterisable convs (``RepConv`` of :mod:`.rep_conv` and
:class:`SepRepConv`) pad with the value BatchNorm gives a zero input (``BNAndPad``), so each one
folds into a single conv after training.
"""
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmspike.registry import MODELS
from ..neurons import build_neuron
from .rep_conv import BNAndPad, RepConv
from .conv import SpikeConvBN, spike_conv_bn_chain
from .time import TimeDistributed, fold_time, unfold_time


class SepRepConv(nn.Module):
    """The last conv of SpikeYOLO's separable conv: ``BNAndPad -> 1x1 (C->C') -> depthwise 3x3``.

    Runs on ``[N, C, H, W]`` (time folded).

    Args:
        in_channels (int): C.
        out_channels (int): C'.
        kernel_size (int): Depthwise kernel. Defaults to 3.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.body = nn.Sequential(
            BNAndPad(in_channels, pad=kernel_size // 2),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.Conv2d(out_channels, out_channels, kernel_size, groups=out_channels, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


class YOLOSepConv(nn.Module):
    """SpikeYOLO's inverted separable conv on ``[T, B, C, H, W]``.

    ``N -> 1x1 (C->rC) + BN -> N -> depthwise kxk + BN -> N -> SepRepConv (rC->C) + BN``.
    It differs from E-SpikeFormer's ``SpikeSepConv`` in its last conv (re-parameterisable).

    Args:
        channels (int): C.
        kernel_size (int): Depthwise kernel. Defaults to 7.
        expansion (float): r. Defaults to 2.
        neuron (dict): Neuron config.
    """

    def __init__(self, channels: int, kernel_size: int = 7, expansion: float = 2.0,
                 neuron: dict = dict(type='ILIF')) -> None:
        super().__init__()
        hidden = int(channels * expansion)
        self.pwconv1 = SpikeConvBN(channels, hidden, 1, neuron=neuron)
        self.dwconv = SpikeConvBN(hidden, hidden, kernel_size, groups=hidden, neuron=neuron)
        self.neuron = build_neuron(neuron)
        self.pwconv2 = TimeDistributed(
            nn.Sequential(SepRepConv(hidden, channels), nn.BatchNorm2d(channels)))

    def forward(self, x: Tensor) -> Tensor:
        return self.pwconv2(self.neuron(spike_conv_bn_chain(x, (self.pwconv1, self.dwconv))))


@MODELS.register_module()
class MSConvBlock(nn.Module):
    """SpikeYOLO's ``MS_ConvBlock`` (residual separable conv, then a residual re-parameterisable
    conv pair) on ``[T, B, C, H, W]``.

    ``x = x + SepConv(x)``; ``x = x + BN(RepConv(N(BN(RepConv(N(x))))))`` with ``RepConv``
    (re-parameterisable 3x3, from :mod:`.rep_conv`) ``C -> rC -> C``. The extra BN after each
    RepConv is kept as upstream has it.

    Args:
        channels (int): C (in = out).
        mlp_ratio (float): r. Defaults to 4.
        kernel_size (int): Depthwise kernel of the separable conv. Defaults to 7.
        neuron (dict): Neuron config. Defaults to ``dict(type='ILIF')``.
    """

    def __init__(self, channels: int, mlp_ratio: float = 4.0, kernel_size: int = 7,
                 neuron: dict = dict(type='ILIF')) -> None:
        super().__init__()
        hidden = int(channels * mlp_ratio)
        self.sepconv = YOLOSepConv(channels, kernel_size, neuron=neuron)
        self.neuron1 = build_neuron(neuron)
        self.conv1 = nn.Sequential(RepConv(channels, hidden), nn.BatchNorm2d(hidden))
        self.neuron2 = build_neuron(neuron)
        self.conv2 = nn.Sequential(RepConv(hidden, channels), nn.BatchNorm2d(channels))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.sepconv(x)
        h, T = fold_time(self.neuron1(x))
        h = unfold_time(self.conv1(h), T)
        h, _ = fold_time(self.neuron2(h))
        return x + unfold_time(self.conv2(h), T)


@MODELS.register_module()
class MSAllConvBlock(nn.Module):
    """SpikeYOLO's ``MS_AllConvBlock``: residual separable conv, then a residual pair of spiking
    3x3 convs.

    ``x = x + SepConv(x)``; ``x = x + SpikeConv3x3(SpikeConv3x3(x))`` with ``C -> rC -> C``.

    Args:
        channels (int): C (in = out).
        mlp_ratio (float): r. Defaults to 4.
        kernel_size (int): Depthwise kernel of the separable conv. Defaults to 7.
        neuron (dict): Neuron config. Defaults to ``dict(type='ILIF')``.
    """

    def __init__(self, channels: int, mlp_ratio: float = 4.0, kernel_size: int = 7,
                 neuron: dict = dict(type='ILIF')) -> None:
        super().__init__()
        hidden = int(channels * mlp_ratio)
        self.sepconv = YOLOSepConv(channels, kernel_size, neuron=neuron)
        self.conv1 = SpikeConvBN(channels, hidden, 3, neuron=neuron)
        self.conv2 = SpikeConvBN(hidden, channels, 3, neuron=neuron)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.sepconv(x)
        return x + spike_conv_bn_chain(x, (self.conv1, self.conv2))


@MODELS.register_module()
class SpikeSPPF(nn.Module):
    """Spiking SPPF: spiking 1x1 conv (C -> C/2), three chained stride-1 max-pools, concat, spiking
    1x1 conv (2C -> C').

    The pools run on the membrane potential; for a memoryless neuron (T = 1, or no leak) max-pooling
    commutes with its monotone firing, so this equals pooling the spikes the next neuron emits.

    Args:
        in_channels (int): C.
        out_channels (int): C'.
        kernel_size (int): Max-pool window. Defaults to 5.
        neuron (dict): Neuron config. Defaults to ``dict(type='ILIF')``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 5,
                 neuron: dict = dict(type='ILIF')) -> None:
        super().__init__()
        hidden = in_channels // 2
        self.conv1 = SpikeConvBN(in_channels, hidden, 1, neuron=neuron)
        self.pool = TimeDistributed(nn.MaxPool2d(kernel_size, 1, kernel_size // 2))
        self.conv2 = SpikeConvBN(hidden * 4, out_channels, 1, neuron=neuron)

    def forward(self, x: Tensor) -> Tensor:
        feats = [self.conv1(x)]
        for _ in range(3):
            feats.append(self.pool(feats[-1]))
        return self.conv2(torch.cat(feats, dim=2))


def set_yolo_norms(module: nn.Module, eps: float = 1e-3, momentum: float = 0.03) -> None:
    """Set ``eps`` and ``momentum`` of every BatchNorm in ``module``.

    Ultralytics sets them to 1e-3 / 0.03 on every BatchNorm of the models it builds, SpikeYOLO's
    included; neither is stored in a checkpoint, so converted SpikeYOLO weights compute upstream's
    function only with these values.
    """
    if not eps > 0 or not 0 <= momentum <= 1:
        raise ValueError(f'need eps > 0 and momentum in [0, 1], got {eps!r}, {momentum!r}')
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eps, m.momentum = float(eps), float(momentum)


def upsample_like(x: Tensor, ref: Tensor) -> Tensor:
    """Nearest-upsample ``[T, B, C, h, w]`` to the size of ``ref`` (``[T, B, C', H, W]``)."""
    y, T = fold_time(x)
    return unfold_time(F.interpolate(y, size=ref.shape[-2:], mode='nearest'), T)


__all__ = ['SepRepConv', 'YOLOSepConv', 'MSConvBlock', 'MSAllConvBlock',
           'SpikeSPPF', 'set_yolo_norms', 'upsample_like']
