"""SpikeYOLO backbone (Luo et al., "Integer-Valued Training and Spike-Driven Inference Spiking
Neural Network for High-performance and Energy-efficient Object Detection", ECCV 2024)."""
from typing import Sequence, Union

from torch import nn

from mmspike.registry import MODELS
from ..layers import SpikeConvBN
from ..layers.yolo_blocks import MSAllConvBlock, MSConvBlock, SpikeSPPF, set_yolo_norms
from .base_backbone import BaseSpikeBackbone


def scale_depth(num_blocks: int, deepen_factor: float) -> int:
    """Blocks of a stage after depth scaling, by YOLOv8's rule (``round`` is Python's, half to even:
    9 blocks x 0.5 -> 4)."""
    return max(round(num_blocks * deepen_factor), 1) if num_blocks > 1 else num_blocks


@MODELS.register_module()
class SpikeYOLOBackbone(BaseSpikeBackbone):
    """SpikeYOLO's spiking backbone.

    A real-valued stride-4 stem (7x7 conv, no neuron), then four stages. Each stage after the first
    starts with a spiking stride-2 3x3 conv; stages 1-2 stack ``MS_AllConvBlock``
    (:class:`MSAllConvBlock`), stages 3-4 ``MS_ConvBlock`` (:class:`MSConvBlock`), and the last
    stage ends with a :class:`SpikeSPPF`. Stage strides are 4, 8, 16, 32.

    The base layout (deepen = widen = 1) is channels 128/256/512/1024, blocks 3/6/9/3 and block
    MLP ratios 4/4/3/2; a scale multiplies the channels by ``widen_factor`` and the block counts by
    ``deepen_factor``.

    Args:
        arch (str | dict): ``'n'``, ``'s'``, ``'m'``, ``'l'`` or a dict with ``deepen_factor`` and
            ``widen_factor``. Defaults to ``'s'``.
        in_channels (int): Image channels. Defaults to 3.
        T (int): Time steps a static image is repeated over (1 on COCO). Defaults to 1.
        neuron (dict): Neuron config. Defaults to SpikeYOLO's integer LIF,
            ``dict(type='ILIF', max_spikes=4)`` (raw integer spikes).
        out_indices (Sequence[int]): Stages to output (0-3, negative counts from the end).
            Defaults to ``(1, 2, 3)`` (strides 8, 16, 32).
        frozen_stages (int): Stages ``0..frozen_stages`` are frozen; -1 freezes nothing.
            Defaults to -1.
        norm_eps (float): eps of every BatchNorm: 1e-3, as ultralytics sets it for SpikeYOLO
            (it is not stored in checkpoints; upstream weights need it). Defaults to 1e-3.
        norm_momentum (float): BatchNorm momentum, ultralytics' 0.03. Defaults to 0.03.
        init_cfg (dict, optional): Defaults to None.

    Outputs are ``[T, B, C, H, W]`` membrane maps; :attr:`out_channels` and :attr:`out_strides` give
    their channels and strides.
    """
    arch_keys = ('deepen_factor', 'widen_factor')
    arch_settings = {
        'n': dict(deepen_factor=0.33, widen_factor=0.375),
        's': dict(deepen_factor=0.33, widen_factor=0.5),
        'm': dict(deepen_factor=0.5, widen_factor=0.625),
        'l': dict(deepen_factor=0.5, widen_factor=0.75),
    }
    # per stage: base channels, base blocks, block type, block MLP ratio, stride
    base_stages = (
        (128, 3, MSAllConvBlock, 4, 4),
        (256, 6, MSAllConvBlock, 4, 2),
        (512, 9, MSConvBlock, 3, 2),
        (1024, 3, MSConvBlock, 2, 2),
    )

    def __init__(self, arch: Union[str, dict] = 's', in_channels: int = 3, T: int = 1,
                 neuron: dict = dict(type='ILIF', max_spikes=4),
                 out_indices: Sequence[int] = (1, 2, 3), frozen_stages: int = -1,
                 norm_eps: float = 1e-3, norm_momentum: float = 0.03, init_cfg=None) -> None:
        super().__init__(in_channels=in_channels, T=T, init_cfg=init_cfg)
        arch = self._check_arch(arch, self.arch_keys)
        num_stages = len(self.base_stages)
        self.deepen_factor = arch['deepen_factor']
        self.widen_factor = arch['widen_factor']

        self.stages = nn.ModuleList()
        channels, strides, stride, prev = [], [], 1, in_channels
        for i, (base_c, base_n, block, ratio, s) in enumerate(self.base_stages):
            c = int(base_c * self.widen_factor)
            if i == 0:  # real-valued input: the stem conv has no neuron
                down = SpikeConvBN(prev, c, 7, stride=s, padding=2, bias=True, neuron=None)
            else:
                down = SpikeConvBN(prev, c, 3, stride=s, padding=1, bias=True, neuron=neuron)
            layers = [down] + [block(c, mlp_ratio=ratio, kernel_size=7, neuron=neuron)
                               for _ in range(scale_depth(base_n, self.deepen_factor))]
            if i == num_stages - 1:
                layers.append(SpikeSPPF(c, c, 5, neuron=neuron))
            self.stages.append(nn.Sequential(*layers))
            stride *= s
            channels.append(c)
            strides.append(stride)
            prev = c
        set_yolo_norms(self, norm_eps, norm_momentum)
        self._init_outputs(channels, strides, out_indices, frozen_stages)
