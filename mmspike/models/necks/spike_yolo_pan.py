"""SpikeYOLO's neck: a YOLOv8 PAN whose C2f blocks are spiking meta blocks."""
from typing import Sequence, Tuple

import torch
from mmengine.model import BaseModule
from torch import Tensor

from mmspike.registry import MODELS
from ..layers import SpikeConvBN
from ..layers.time import as_time_major
from ..layers.yolo_blocks import MSAllConvBlock, MSConvBlock, set_yolo_norms, upsample_like


@MODELS.register_module()
class SpikeYOLOPAN(BaseModule):
    """Spiking path-aggregation neck of SpikeYOLO on ``[T, B, C, H, W]`` features.

    With backbone features ``(C3, C4, C5)`` at strides 8/16/32 of channels ``(c3, c4, c5)``::

        top-down:  r5 = conv1x1(C5) -> c4
                   r4 = conv1x1(cat(ConvBlock(up(r5)), C4)) -> c3
                   P3 = AllConvBlock(conv1x1(cat(AllConvBlock(up(r4)), C3)))          [c3]
        bottom-up: P4 = ConvBlock(cat(conv3x3s2(P3), r4))                              [2 c3]
                   P5 = ConvBlock(cat(conv3x3s2(P4) -> c4, r5), out5_mlp_ratio)        [2 c4]

    Every conv is spiking (neuron -> conv -> BN); upsampling is nearest, concatenation is on the
    membrane potential. The outputs keep T: SpikeYOLO's head is spiking too and reduces T itself.

    Args:
        in_channels (Sequence[int]): ``(c3, c4, c5)``, e.g. ``(128, 256, 512)`` for scale s.
        out5_mlp_ratio (float): MLP ratio of the last (P5) block: 1 for scales n/s, 2 for m/l.
            Defaults to 1.
        kernel_size (int): Depthwise kernel of the blocks' separable convs. Defaults to 7.
        neuron (dict): Neuron config. Defaults to ``dict(type='ILIF', max_spikes=4)``.
        norm_eps (float): eps of every BatchNorm (ultralytics' 1e-3, which upstream weights
            need). Defaults to 1e-3.
        norm_momentum (float): BatchNorm momentum. Defaults to 0.03.
        init_cfg (dict, optional): Defaults to None.
    """

    def __init__(self, in_channels: Sequence[int], out5_mlp_ratio: float = 1.0,
                 kernel_size: int = 7, neuron: dict = dict(type='ILIF', max_spikes=4),
                 norm_eps: float = 1e-3, norm_momentum: float = 0.03, init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        if len(in_channels) != 3:
            raise ValueError('SpikeYOLOPAN takes three inputs (strides 8, 16, 32), got '
                             f'in_channels={tuple(in_channels)}')
        c3, c4, c5 = in_channels
        k, n = kernel_size, neuron
        self.in_channels = tuple(in_channels)
        # top-down
        self.reduce5 = SpikeConvBN(c5, c4, 1, neuron=n)
        self.td_block4 = MSConvBlock(c4, 3, k, neuron=n)
        self.reduce4 = SpikeConvBN(2 * c4, c3, 1, neuron=n)
        self.td_block3 = MSAllConvBlock(c3, 4, k, neuron=n)
        self.fuse3 = SpikeConvBN(2 * c3, c3, 1, neuron=n)
        self.out_block3 = MSAllConvBlock(c3, 4, k, neuron=n)
        # bottom-up
        self.down3 = SpikeConvBN(c3, c3, 3, stride=2, neuron=n)
        self.out_block4 = MSConvBlock(2 * c3, 3, k, neuron=n)
        self.down4 = SpikeConvBN(2 * c3, c4, 3, stride=2, neuron=n)
        self.out_block5 = MSConvBlock(2 * c4, out5_mlp_ratio, k, neuron=n)
        self.out_channels = (c3, 2 * c3, 2 * c4)
        set_yolo_norms(self, norm_eps, norm_momentum)

    def forward(self, inputs: Sequence[Tensor]) -> Tuple[Tensor, Tensor, Tensor]:
        if len(inputs) != 3:
            raise ValueError(f'SpikeYOLOPAN expects 3 feature maps, got {len(inputs)}')
        # mmspike's input-layout rule: [T, B, C, H, W], or [B, C, H, W] as one step
        x3, x4, x5 = (as_time_major(x, f'SpikeYOLOPAN level {i}', c)
                      for i, (x, c) in enumerate(zip(inputs, self.in_channels)))
        r5 = self.reduce5(x5)
        t4 = self.td_block4(upsample_like(r5, x4))
        r4 = self.reduce4(torch.cat([t4, x4], dim=2))
        t3 = self.td_block3(upsample_like(r4, x3))
        p3 = self.out_block3(self.fuse3(torch.cat([t3, x3], dim=2)))
        p4 = self.out_block4(torch.cat([self.down3(p3), r4], dim=2))
        p5 = self.out_block5(torch.cat([self.down4(p4), r5], dim=2))
        return p3, p4, p5
