"""Necks that end the time axis, so stock mmpretrain/mmdet/mmseg heads never see T."""
from typing import Optional, Sequence, Tuple, Union

from torch import Tensor, nn

from mmspike.registry import MODELS
from ..layers import reduce_time
from ..layers.time import as_time_major
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


INPUT_LAYOUTS = ('map', 'tokens')


@MODELS.register_module()
class SpikeGlobalAveragePooling(nn.Module):
    """Classification neck: global average pooling, an optional neuron, then the mean over T.

    ``[T, B, C, H, W] -> GAP -> neuron -> mean_T -> [B, C]``. A linear head on the mean equals the
    mean of the per-step logits (linearity), which is how spiking classifiers average over time.

    Inputs follow mmspike's input-layout rule (:mod:`mmspike.models.layers.time`): with
    ``input_layout='map'`` a 5-D input is ``[T, B, C, H, W]`` and a 4-D one ``[B, C, H, W]``
    (one step); token sequences are read only with ``input_layout='tokens'``: ``[T, B, N, C]``
    (or ``[B, N, C]``, one step), averaged over the N tokens.

    Args:
        neuron (dict, optional): Neuron after pooling (E-SpikeFormer uses ``MultiSpike`` with
            ``norm=1`` before its classifier). Defaults to None (no neuron).
        input_layout (str): ``'map'`` or ``'tokens'``. Defaults to ``'map'``.
    """

    def __init__(self, neuron: Optional[dict] = None, input_layout: str = 'map') -> None:
        super().__init__()
        if input_layout not in INPUT_LAYOUTS:
            raise ValueError(f'input_layout must be one of {INPUT_LAYOUTS}, got {input_layout!r}')
        self.input_layout = input_layout
        self.neuron = build_neuron(neuron)

    def forward(self, inputs):
        outs = []
        for x in _as_tuple(inputs):
            if self.input_layout == 'map':
                x = as_time_major(x, type(self).__name__).mean((3, 4))
            elif x.dim() in (3, 4):  # [T, B, N, C] or [B, N, C] tokens
                x = (x if x.dim() == 4 else x.unsqueeze(0)).mean(2)
            else:
                raise ValueError(f"{type(self).__name__}(input_layout='tokens') expects "
                                 f'[T, B, N, C] or [B, N, C] tokens, got {tuple(x.shape)}')
            outs.append(self.neuron(x).mean(0))
        return tuple(outs)

    def extra_repr(self) -> str:
        return f'input_layout={self.input_layout!r}'
