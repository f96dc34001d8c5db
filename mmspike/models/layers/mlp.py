"""Spiking channel MLP: two spike-fed convolutions with BN."""
from typing import Optional

from torch import Tensor, nn

from mmspike.registry import MODELS
from .conv import SpikeConvBN, spike_conv_bn_chain


@MODELS.register_module()
class SpikeMLP(nn.Module):
    """``N -> conv (C -> hidden) + BN -> N -> conv (hidden -> C_out) + BN`` on ``[T, B, C, H, W]``.

    With ``kernel_size=1`` this is the token MLP of spiking Transformer blocks (a 1x1 conv on the
    map equals a per-token linear layer); with ``kernel_size=3`` it is the channel MLP of the CNN
    blocks of Meta-SpikeFormer / E-SpikeFormer.

    Args:
        in_channels (int): Input channels C.
        hidden_channels (int, optional): Hidden channels. Defaults to ``4 * in_channels``.
        out_channels (int, optional): Output channels. Defaults to ``in_channels``.
        kernel_size (int): Kernel of both convs. Defaults to 1.
        bias (bool): Conv biases. Defaults to True.
        neuron (dict): Neuron config. Defaults to ``dict(type='MultiSpike')``.
    """

    def __init__(self, in_channels: int, hidden_channels: Optional[int] = None,
                 out_channels: Optional[int] = None, kernel_size: int = 1, bias: bool = True,
                 neuron: Optional[dict] = dict(type='MultiSpike')) -> None:
        super().__init__()
        hidden_channels = hidden_channels or 4 * in_channels
        out_channels = out_channels or in_channels
        self.fc1 = SpikeConvBN(in_channels, hidden_channels, kernel_size, neuron=neuron, bias=bias)
        self.fc2 = SpikeConvBN(hidden_channels, out_channels, kernel_size, neuron=neuron, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return spike_conv_bn_chain(x, (self.fc1, self.fc2))
