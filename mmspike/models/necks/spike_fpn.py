"""Spiking feature pyramid network: spiking features in, ordinary ``[B, C, H, W]`` maps out."""
from typing import Optional, Sequence, Tuple, Union

import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmspike.registry import MODELS
from ..layers import fold_time, reduce_time, unfold_time
from ..layers.norm import build_norm
from ..layers.time import as_time_major
from ..neurons import build_neuron

EXTRA_CONV_SOURCES = ('on_input', 'on_lateral', 'on_output')


class SpikeConvModule(nn.Module):
    """``neuron -> conv -> (norm)`` on ``[T, B, C, H, W]``; the conv has a bias when there is no
    norm.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        kernel_size (int): Kernel size.
        stride (int): Defaults to 1.
        neuron (dict, optional): Neuron before the conv (None: real-valued input).
        norm_cfg (dict, optional): Norm config (``dict(type='BN')``, ``'GN'``, ``'SyncBN'``; see
            :func:`~mmspike.models.layers.norm.build_norm`).
            Defaults to None.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 neuron: Optional[dict] = None, norm_cfg: Optional[dict] = None) -> None:
        super().__init__()
        self.neuron = build_neuron(neuron)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2,
                              bias=norm_cfg is None)
        self.norm = build_norm(norm_cfg, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        y, T = fold_time(self.neuron(x))
        return unfold_time(self.norm(self.conv(y)), T)


@MODELS.register_module()
class SpikeFPN(BaseModule):
    """Spiking FPN: mmdet's ``FPN`` with an integer neuron before every conv.

    Takes the ``[T, B, C, H, W]`` features of a spiking backbone (a ``[B, C, H, W]`` feature of a
    non-spiking backbone is taken as T = 1), builds the pyramid on each time step - lateral 1x1
    convs and 3x3 output convs fed by spikes, the top-down sum on the membrane potential - and
    returns ordinary ``[B, C, H, W]`` maps reduced over T, so stock mmdet RPN / RoI / dense heads
    follow unchanged.

    The output strides are the input strides (levels ``start_level .. end_level``) followed by one
    stride-2 step per extra level. Two inputs at the same stride (E-SpikeFormer's stages 3 and 4 are
    both at 16) stay at that stride: the top-down upsampling goes to the finer map's size, whatever
    the ratio. Pass ``in_strides`` to get :attr:`out_strides`, and use it for the anchor generator /
    RoI extractor strides of the heads.

    Args:
        in_channels (Sequence[int]): Channels of each input level.
        out_channels (int): Channels of every output.
        num_outs (int): Number of outputs (extra levels are added past the inputs used).
        start_level (int): First input level used. Defaults to 0.
        end_level (int): Last input level used (inclusive); -1 means the last. Defaults to -1.
        add_extra_convs (bool | str): Extra levels by max-pool (False) or by spiking stride-2 3x3
            convs on ``'on_input'`` (the last input used), ``'on_lateral'`` or ``'on_output'``;
            True means ``'on_input'``. Defaults to False.
        neuron (dict): Neuron before each conv. Defaults to ``MultiSpike`` with D=4 and raw integer
            output (``norm=1``), as upstream's detection necks.
        norm_cfg (dict, optional): Norm after each conv. Defaults to None (conv bias).
        upsample_cfg (dict): ``F.interpolate`` arguments for the top-down path (``size`` is always
            the finer level's). Defaults to ``dict(mode='nearest')``.
        time_reduction (str, optional): ``'mean'`` or ``'sum'`` over T, or None to keep
            ``[T, B, C, H, W]`` outputs for a spiking head. Defaults to ``'mean'``.
        in_strides (Sequence[int], optional): Stride of each input level, to compute
            :attr:`out_strides` and check that strides do not decrease. Defaults to None.
        init_cfg (dict | list[dict]): Defaults to Xavier-uniform convs, as mmdet's FPN.
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 out_channels: int,
                 num_outs: int,
                 start_level: int = 0,
                 end_level: int = -1,
                 add_extra_convs: Union[bool, str] = False,
                 neuron: dict = dict(type='MultiSpike', max_spikes=4, norm=1.0),
                 norm_cfg: Optional[dict] = None,
                 upsample_cfg: dict = dict(mode='nearest'),
                 time_reduction: Optional[str] = 'mean',
                 in_strides: Optional[Sequence[int]] = None,
                 init_cfg=dict(type='Xavier', layer='Conv2d', distribution='uniform')) -> None:
        super().__init__(init_cfg=init_cfg)
        self.in_channels = tuple(in_channels)
        num_ins = len(in_channels)
        if end_level == -1 or end_level == num_ins - 1:
            self.backbone_end_level = num_ins
        elif 0 <= end_level < num_ins:
            self.backbone_end_level = end_level + 1
        else:
            raise ValueError(f'end_level must be -1 or in [0, {num_ins - 1}], got {end_level}')
        if not 0 <= start_level < self.backbone_end_level:
            raise ValueError(f'start_level must be in [0, {self.backbone_end_level - 1}], got '
                             f'{start_level}')
        num_used = self.backbone_end_level - start_level
        if num_outs < num_used:
            raise ValueError(f'num_outs={num_outs} is fewer than the {num_used} input levels used')
        if add_extra_convs is True:
            add_extra_convs = 'on_input'
        if add_extra_convs not in (False, *EXTRA_CONV_SOURCES):
            raise ValueError(f'add_extra_convs must be a bool or one of {EXTRA_CONV_SOURCES}, got '
                             f'{add_extra_convs!r}')
        if time_reduction not in ('mean', 'sum', None):
            raise ValueError("time_reduction must be 'mean', 'sum' or None, got "
                             f'{time_reduction!r}')
        self.out_channels = out_channels
        self.num_outs = num_outs
        self.start_level = start_level
        self.add_extra_convs = add_extra_convs
        self.upsample_cfg = {k: v for k, v in upsample_cfg.items()
                             if k not in ('size', 'scale_factor')}
        self.time_reduction = time_reduction

        self.lateral_convs = nn.ModuleList()
        self.fpn_convs = nn.ModuleList()
        for i in range(start_level, self.backbone_end_level):
            self.lateral_convs.append(
                SpikeConvModule(in_channels[i], out_channels, 1, neuron=neuron,
                                norm_cfg=norm_cfg))
            self.fpn_convs.append(
                SpikeConvModule(out_channels, out_channels, 3, neuron=neuron, norm_cfg=norm_cfg))
        self.extra_convs = nn.ModuleList()
        if add_extra_convs:
            for i in range(num_outs - num_used):
                c_in = (in_channels[self.backbone_end_level - 1]
                        if i == 0 and add_extra_convs == 'on_input' else out_channels)
                self.extra_convs.append(
                    SpikeConvModule(c_in, out_channels, 3, stride=2, neuron=neuron,
                                    norm_cfg=norm_cfg))

        self.out_strides = None
        if in_strides is not None:
            if len(in_strides) != num_ins:
                raise ValueError(f'in_strides {tuple(in_strides)} must have one entry per input '
                                 f'level ({num_ins})')
            if any(b < a for a, b in zip(in_strides, in_strides[1:])):
                raise ValueError(f'in_strides must not decrease, got {tuple(in_strides)}')
            used = list(in_strides[start_level:self.backbone_end_level])
            extra = [used[-1] * 2**(k + 1) for k in range(num_outs - num_used)]
            self.out_strides = tuple(used + extra)

    def forward(self, inputs: Sequence[Tensor]) -> Tuple[Tensor, ...]:
        """Args:
            inputs (Sequence[Tensor]): ``[T, B, C_i, H_i, W_i]`` (or ``[B, C_i, H_i, W_i]``) per
                level.

        Returns:
            tuple[Tensor]: ``num_outs`` maps ``[B, out_channels, H, W]`` (``[T, B, ...]`` when
            ``time_reduction`` is None).
        """
        if len(inputs) != len(self.in_channels):
            raise ValueError(f'SpikeFPN was built for {len(self.in_channels)} input levels, got '
                             f'{len(inputs)}')
        # mmspike's input-layout rule: [T, B, C, H, W], or [B, C, H, W] as one step
        inputs = [as_time_major(x, f'SpikeFPN level {i}', c)
                  for i, (x, c) in enumerate(zip(inputs, self.in_channels))]
        if len({x.shape[0] for x in inputs}) != 1:
            raise ValueError(f'inputs have different T: {[x.shape[0] for x in inputs]}')

        laterals = [conv(inputs[i + self.start_level])
                    for i, conv in enumerate(self.lateral_convs)]
        for i in range(len(laterals) - 1, 0, -1):
            up, T = fold_time(laterals[i])
            up = F.interpolate(up, size=laterals[i - 1].shape[-2:], **self.upsample_cfg)
            laterals[i - 1] = laterals[i - 1] + unfold_time(up, T)
        outs = [conv(lat) for conv, lat in zip(self.fpn_convs, laterals)]

        for i in range(self.num_outs - len(outs)):
            if not self.add_extra_convs:
                # mmdet FPN's extra level: stride-2 subsampling of the last output
                y, T = fold_time(outs[-1])
                outs.append(unfold_time(F.max_pool2d(y, 1, stride=2), T))
            elif i == 0:
                src = {'on_input': inputs[self.backbone_end_level - 1],
                       'on_lateral': laterals[-1],
                       'on_output': outs[-1]}[self.add_extra_convs]
                outs.append(self.extra_convs[0](src))
            else:
                outs.append(self.extra_convs[i](outs[-1]))

        if self.time_reduction is None:
            return tuple(outs)
        return tuple(reduce_time(o, self.time_reduction) for o in outs)
