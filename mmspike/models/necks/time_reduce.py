"""Necks that end the time axis, so stock mmpretrain/mmdet/mmseg heads never see T."""
from typing import Optional, Sequence, Tuple, Union

from torch import Tensor, nn

from mmspike.registry import MODELS
from ..layers import reduce_time
from ..neurons import build_neuron


def _as_tuple(inputs: Union[Tensor, Sequence[Tensor]]) -> Tuple[Tensor, ...]:
    return (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)


@MODELS.register_module()
class TimeReduce(nn.Module):
    """Reduce every ``[T, B, ...]`` feature over T (mean by default) into an ordinary ``[B, ...]`` map.

    Use it as the neck (or the first of a list of necks: ``neck=[dict(type='mmspike.TimeReduce'),
    dict(type='FPN', ...)]``) in front of any stock head.

    Args:
        mode (str): ``'mean'`` or ``'sum'``. Defaults to ``'mean'``.
    """

    def __init__(self, mode: str = 'mean') -> None:
        super().__init__()
        assert mode in ("mean", "sum"), f"mode must be 'mean' or 'sum', got {mode!r}"
        self.mode = mode

    def forward(self, inputs):
        outs = []
        for x in _as_tuple(inputs):
            if x.dim() < 3:
                raise ValueError(f'TimeReduce expects [T, B, ...] features, got {tuple(x.shape)}')
            outs.append(reduce_time(x, self.mode))
        return tuple(outs)


@MODELS.register_module()
class SpikeGlobalAveragePooling(nn.Module):
    """Classification neck: global average pooling, an optional neuron, then the mean over T.

    ``[T, B, C, H, W] -> GAP -> neuron -> mean_T -> [B, C]``. A linear head on the mean equals the
    mean of the per-step logits (linearity), which is how spiking classifiers average over time.

    Args:
        neuron (dict, optional): Neuron after pooling (E-SpikeFormer uses ``MultiSpike`` with
            ``norm=1`` before its classifier). Defaults to None (no neuron).
    """

    def __init__(self, neuron: Optional[dict] = None) -> None:
        super().__init__()
        self.neuron = build_neuron(neuron)

    def forward(self, inputs):
        outs = []
        for x in _as_tuple(inputs):
            if x.dim() == 5:
                x = x.mean((3, 4))
            elif x.dim() == 4:  # [T, B, N, C] tokens
                x = x.mean(2)
            else:
                raise ValueError('SpikeGlobalAveragePooling expects [T, B, C, H, W] or '
                                 f'[T, B, N, C], got {tuple(x.shape)}')
            outs.append(self.neuron(x).mean(0))
        return tuple(outs)
