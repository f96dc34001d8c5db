"""Spiking convolution blocks: ``neuron -> conv -> BN`` on ``[T, B, C, H, W]``."""
from typing import Optional, Sequence, Union

from torch import Tensor, nn

from mmspike.registry import MODELS
from ..neurons import build_neuron
from .fused import spike_convs
from .time import fold_time, unfold_time


@MODELS.register_module()
class SpikeConvBN(nn.Module):
    """A spike-driven conv unit: the input is turned into spikes, convolved, then normalised.

    ``[T, B, C, H, W] -> neuron -> Conv2d -> BN -> [T, B, C', H', W']``. With ``neuron=None`` the
    conv receives real values (the first layer of a network, counted as MACs, not ACs).

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        kernel_size (int): Defaults to 3.
        stride (int): Defaults to 1.
        padding (int, optional): Defaults to ``kernel_size // 2``.
        groups (int): Defaults to 1.
        bias (bool): Conv bias. Defaults to False (BN follows).
        neuron (dict, optional): Neuron config before the conv. Defaults to
            ``dict(type='MultiSpike')``.
        norm (bool): Whether a BatchNorm follows. Defaults to True.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                 stride: int = 1, padding: Optional[int] = None, groups: int = 1,
                 bias: bool = False, neuron: Optional[dict] = dict(type='MultiSpike'),
                 norm: bool = True) -> None:
        super().__init__()
        self.neuron = build_neuron(neuron)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride,
                              kernel_size // 2 if padding is None else padding,
                              groups=groups, bias=bias)
        self.bn = nn.BatchNorm2d(out_channels) if norm else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 5:
            raise ValueError(f'SpikeConvBN expects [T, B, C, H, W], got shape {tuple(x.shape)}')
        T = x.shape[0]
        fused = spike_convs(x, self.neuron, (self.conv, ))  # fast path: spikes kept as bytes
        if fused is not None:
            return unfold_time(self.bn(fused[0]), T)
        x, T = fold_time(self.neuron(x))
        return unfold_time(self.bn(self.conv(x)), T)


def spike_conv_bn_chain(x: Tensor, layers: Sequence[SpikeConvBN]) -> Tensor:
    """``layers[-1](...layers[0](x))``, each BN but the last handed on to the next layer's
    fused firing pass (:func:`~mmspike.models.layers.spike_convs` with ``bn``).

    The BatchNorm then runs inside the next neuron's firing pass (in training too, on
    channels-last activations, its backward inside the neuron's): passes over the activations
    fewer per link, the same bits. Wherever a layer cannot fuse (plain path, another layout,
    hooks), it runs as a module, with the pending BN applied first.
    """
    if x.dim() != 5:
        raise ValueError(f'SpikeConvBN expects [T, B, C, H, W], got shape {tuple(x.shape)}')
    T = x.shape[0]

    def apply(bn: Optional[nn.Module], x: Tensor) -> Tensor:
        return x if bn is None else unfold_time(bn(fold_time(x)[0]), T)

    pending: Optional[nn.Module] = None  # the previous layer's BN, not yet applied to x
    for layer in layers:
        # observed=(layer, ): a hook on the layer must see it run as a module; with a pending
        # BN, x is the previous link's conv output, which only this loop holds
        fused = spike_convs(x, layer.neuron, (layer.conv, ), observed=(layer, ), bn=pending,
                            overwrite_input=pending is not None)
        if fused is None:
            x, pending = layer(apply(pending, x)), None
        else:
            x = unfold_time(fused[0], T)
            pending = None if isinstance(layer.bn, nn.Identity) else layer.bn
    return apply(pending, x)
