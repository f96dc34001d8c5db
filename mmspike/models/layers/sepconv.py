"""Spike separable convolution (the token mixer of E-SpikeFormer's CNN and Transformer blocks)."""
from typing import Optional

from torch import Tensor, nn

from mmspike.registry import MODELS
from .conv import SpikeConvBN, spike_conv_bn_chain


@MODELS.register_module()
class SpikeSepConv(nn.Module):
    """Inverted separable convolution whose every conv is fed by spikes.

    With ``spike_dwconv=True`` (E-SpikeFormer)::

        N -> PW 1x1 (C -> rC) + BN -> N -> DW kxk + BN -> N -> PW 1x1 (rC -> C) + BN

    With ``spike_dwconv=False`` (Meta-SpikeFormer) the depthwise conv has no BN and feeds the
    last pointwise conv directly: ``N -> PW+BN -> N -> DW -> PW+BN``. E-SpikeFormer inserts the BN
    and the neuron so that the second pointwise conv still receives spikes (a re-parameterised
    DW+PW kernel would otherwise be larger and cost more synaptic operations).

    Args:
        channels (int): Input and output channels C.
        expansion (float): Hidden width ratio r. Defaults to 2.
        kernel_size (int): Depthwise kernel size k. Defaults to 7.
        neuron (dict): Neuron config. Defaults to ``dict(type='MultiSpike')``.
        spike_dwconv (bool): Whether BN and a neuron follow the depthwise conv. Defaults to True.
        bias (bool): Conv biases. Defaults to False.

    Input and output are ``[T, B, C, H, W]``.
    """

    def __init__(self, channels: int, expansion: float = 2, kernel_size: int = 7,
                 neuron: Optional[dict] = dict(type='MultiSpike'), spike_dwconv: bool = True,
                 bias: bool = False) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f'SpikeSepConv needs an odd kernel_size, got {kernel_size}')
        hidden = int(channels * expansion)
        if hidden < 1:
            raise ValueError(f'expansion {expansion} leaves no hidden channel for '
                             f'{channels} channels')
        self.pwconv1 = SpikeConvBN(channels, hidden, 1, neuron=neuron, bias=bias)
        self.dwconv = SpikeConvBN(hidden, hidden, kernel_size, groups=hidden, neuron=neuron,
                                  bias=bias, norm=spike_dwconv)
        self.pwconv2 = SpikeConvBN(hidden, channels, 1, neuron=neuron if spike_dwconv else None,
                                   bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return spike_conv_bn_chain(x, (self.pwconv1, self.dwconv, self.pwconv2))
