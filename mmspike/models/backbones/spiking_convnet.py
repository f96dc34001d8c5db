"""A small spiking residual CNN for small images (digits, CIFAR-sized inputs)."""
from typing import Optional, Sequence, Tuple, Union

from mmengine.model import BaseModule
from torch import Tensor, nn

from mmspike.registry import MODELS
from ..layers import SpikeConvBN, to_time_sequence
from .base_backbone import check_arch


class SpikeBasicBlock(nn.Module):
    """Two spiking 3x3 convs with a membrane-level residual (MS-ResNet style)."""

    def __init__(self, channels: int, neuron: dict) -> None:
        super().__init__()
        self.conv1 = SpikeConvBN(channels, channels, 3, neuron=neuron)
        self.conv2 = SpikeConvBN(channels, channels, 3, neuron=neuron)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(self.conv1(x))


@MODELS.register_module()
class SpikingConvNet(BaseModule):
    """Spiking residual CNN: a real-valued stem conv, then stages of
    ``[spiking strided conv, spiking residual blocks]``.

    Args:
        arch (str | dict): ``'tiny'`` or a dict with ``channels`` and ``strides`` (one per stage) and
            ``depths`` (residual blocks per stage). Defaults to ``'tiny'``.
        in_channels (int): Defaults to 3.
        T (int): Time steps a static image is repeated over. Defaults to 1.
        neuron (dict): Neuron config. Defaults to ``dict(type='MultiSpike')``.
        out_indices (Sequence[int]): Stages to output. Defaults to ``(-1,)``.
        init_cfg (dict, optional): Defaults to None.

    Outputs are ``[T, B, C, H, W]`` membrane maps, one per index of ``out_indices``.
    """
    arch_keys = ('channels', 'strides', 'depths')
    arch_settings = {
        'tiny': dict(channels=(32, 64, 128), strides=(1, 2, 2), depths=(1, 1, 1)),
        'small': dict(channels=(64, 128, 256), strides=(1, 2, 2), depths=(1, 2, 2)),
    }

    def __init__(self, arch: Union[str, dict] = 'tiny', in_channels: int = 3, T: int = 1,
                 neuron: dict = dict(type='MultiSpike'),
                 out_indices: Sequence[int] = (-1,), init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        arch = check_arch(type(self).__name__, self.arch_settings, self.arch_keys, arch,
                          self.arch_keys)
        channels, strides, depths = arch['channels'], arch['strides'], arch['depths']
        if not len(channels) == len(strides) == len(depths):
            raise ValueError('arch channels, strides and depths must have one entry per stage, '
                             f'got {len(channels)}, {len(strides)}, {len(depths)}')
        if T < 1:
            raise ValueError(f'T must be >= 1, got {T}')
        self.T = T
        num_stages = len(channels)
        self.out_indices = tuple(i % num_stages for i in out_indices)
        self.stem = SpikeConvBN(in_channels, channels[0], 3, neuron=None)
        self.stages = nn.ModuleList()
        prev = channels[0]
        for c, s, d in zip(channels, strides, depths):
            layers = [SpikeConvBN(prev, c, 3, stride=s, neuron=neuron)]
            layers += [SpikeBasicBlock(c, neuron) for _ in range(d)]
            self.stages.append(nn.Sequential(*layers))
            prev = c
        self.out_channels = tuple(channels[i] for i in self.out_indices)

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        x = self.stem(to_time_sequence(x, self.T))
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)
