"""Spiking decode heads for mmseg: mmseg's ``BaseDecodeHead`` machinery (losses, ``predict``,
``EncoderDecoder``, ``IoUMetric``) with integer neurons in front of every conv."""
import math
from typing import List, Optional, Sequence, Tuple

from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.models.utils import Upsample, resize
from torch import Tensor, nn

from mmspike.registry import MODELS
from mmspike.models.layers import (TimeDistributed, as_time_major, fold_time, reduce_time,
                                   unfold_time)
from mmspike.models.necks.spike_fpn import SpikeConvModule
from mmspike.models.neurons import build_neuron


@MODELS.register_module()
class SpikeFPNHead(BaseDecodeHead):
    """Spiking Semantic FPN head: mmseg's ``FPNHead`` with an integer neuron before every conv.

    Each input level goes through its own scale head of ``neuron -> conv3x3 -> norm`` units, with a
    2x bilinear upsampling after each unit until the level reaches the stride of the first level
    (one unit for levels already there, as in mmseg's ``FPNHead``). The scale heads are summed on
    the membrane potential, a last neuron turns the sum into spikes, which are reduced over T
    (mean: the classifier is linear, so this is the mean of the per-step logits) and classified by
    ``conv_seg``. The output is ordinary ``[B, num_classes, H, W]`` logits, so mmseg's losses,
    ``predict`` (whole or sliding window) and ``IoUMetric`` work unchanged.

    Inputs are the ``[T, B, C, H, W]`` maps of :class:`~mmspike.models.necks.SpikeFPN` built with
    ``time_reduction=None`` (the neurons then run over the real time steps), or ordinary
    ``[B, C, H, W]`` maps, taken as T = 1. Neurons keep no state, so nothing leaks between the
    windows of sliding-window inference or between batches.

    Args:
        feature_strides (Sequence[int]): Stride of each selected input level; the first must be
            the smallest. Equal strides are allowed (E-SpikeFormer's stages 3 and 4 are both at 16).
        neuron (dict): Neuron before each conv of the scale heads. Defaults to
            ``dict(type='MultiSpike', max_spikes=4)`` (D=4, outputs divided by D, as upstream).
        out_neuron (dict, optional): Neuron before ``conv_seg``; None uses ``neuron``.
            Defaults to None.
        time_reduction (str): ``'mean'`` or ``'sum'`` over T before ``conv_seg``.
            Defaults to ``'mean'``.
        act_cfg (dict, optional): Must be None: the neurons are the nonlinearity.
            Defaults to None.
        **kwargs: :class:`mmseg.models.decode_heads.decode_head.BaseDecodeHead` arguments
            (``in_channels``, ``channels``, ``num_classes``, ``in_index``, ``norm_cfg``,
            ``dropout_ratio``, ``align_corners``, ``loss_decode``, ...). ``conv_cfg`` must be None.
    """

    def __init__(self,
                 feature_strides: Sequence[int],
                 neuron: dict = dict(type='MultiSpike', max_spikes=4),
                 out_neuron: Optional[dict] = None,
                 time_reduction: str = 'mean',
                 act_cfg: Optional[dict] = None,
                 **kwargs) -> None:
        if act_cfg is not None:
            raise ValueError(f'{type(self).__name__} has no activation layers (its neurons are the '
                             f'nonlinearity); act_cfg must be None, got {act_cfg!r}')
        if kwargs.get('conv_cfg') is not None:
            raise ValueError(f'{type(self).__name__} builds plain Conv2d layers; conv_cfg must be '
                             f"None, got {kwargs['conv_cfg']!r}")
        if kwargs.pop('input_transform', 'multiple_select') != 'multiple_select':
            raise ValueError(f"{type(self).__name__} always uses input_transform='multiple_select'")
        super().__init__(input_transform='multiple_select', act_cfg=None, **kwargs)
        feature_strides = tuple(feature_strides)
        if len(feature_strides) != len(self.in_channels):
            raise ValueError(f'feature_strides {feature_strides} needs one entry per input level '
                             f'(in_channels {tuple(self.in_channels)})')
        if any(s < 1 for s in feature_strides) or min(feature_strides) != feature_strides[0]:
            raise ValueError(f'feature_strides must be positive with the smallest first, got '
                             f'{feature_strides}')
        if time_reduction not in ('mean', 'sum'):
            raise ValueError(f"time_reduction must be 'mean' or 'sum', got {time_reduction!r}")
        self.feature_strides = feature_strides
        self.time_reduction = time_reduction

        self.scale_heads = nn.ModuleList()
        for c_in, stride in zip(self.in_channels, feature_strides):
            # 2x upsamplings that bring this level to the first level's stride (the final resize
            # to the first level's size absorbs any non-power-of-2 remainder)
            num_ups = int(math.log2(stride / feature_strides[0]))
            layers: List[nn.Module] = []
            for k in range(max(1, num_ups)):
                layers.append(
                    SpikeConvModule(c_in if k == 0 else self.channels, self.channels, 3,
                                    neuron=neuron, norm_cfg=self.norm_cfg))
                if k < num_ups:
                    layers.append(TimeDistributed(
                        Upsample(scale_factor=2, mode='bilinear',
                                 align_corners=self.align_corners)))
            self.scale_heads.append(nn.Sequential(*layers))
        self.out_neuron = build_neuron(neuron if out_neuron is None else out_neuron)

    def _to_sequences(self, inputs: Sequence[Tensor]) -> List[Tensor]:
        # mmspike's input-layout rule: [T, B, C, H, W], or [B, C, H, W] as one step
        feats = [as_time_major(x, f'{type(self).__name__} input {i}', c)
                 for i, (x, c) in enumerate(zip(inputs, self.in_channels))]
        if len({x.shape[:2] for x in feats}) != 1:
            raise ValueError(f'input levels disagree on [T, B]: {[tuple(x.shape) for x in feats]}')
        return feats

    def forward(self, inputs: Tuple[Tensor, ...]) -> Tensor:
        """Args:
            inputs (tuple[Tensor]): All neck outputs; ``in_index`` selects the levels used.

        Returns:
            Tensor: ``[B, num_classes, H_0, W_0]`` logits at the first level's resolution.
        """
        feats = self._to_sequences(self._transform_inputs(inputs))
        out = self.scale_heads[0](feats[0])
        for head, x in zip(self.scale_heads[1:], feats[1:]):
            y, T = fold_time(head(x))
            y = resize(y, size=out.shape[-2:], mode='bilinear', align_corners=self.align_corners)
            out = out + unfold_time(y, T)
        spikes = reduce_time(self.out_neuron(out), self.time_reduction)
        return self.cls_seg(spikes)
