"""MetaFormer-style spiking blocks shared by E-SpikeFormer, Meta-SpikeFormer and Spikformer V2.

All residuals are membrane shortcuts: the branch output (real-valued, after BN) is added to the
real-valued stream and the next branch turns the sum into spikes first, so every conv and matmul
receives spikes.
"""
from typing import List, Optional

import torch
from torch import Tensor, nn

from mmspike.registry import MODELS
from ..execution import ExecutionModeMixin
from ..neurons import build_neuron
from .attention import SpikeDrivenAttention
from .fused import _observed
from .rep_conv import LinearPair
from .mlp import SpikeMLP
from .sepconv import SpikeSepConv
from .time import TimeDistributed


DROP_PATH_RULES = ('linspace', 'ratio')


def drop_path_rates(max_rate: float, num_blocks: int, rule: str = 'linspace') -> List[float]:
    """The stochastic-depth schedule of every mmspike backbone: rates rising linearly from 0 at
    the first block to ``max_rate`` at the last.

    The two rules give the same schedule up to the last bits; each backbone family keeps the
    arithmetic its rates have always had, so its training numbers do not move:

    * ``'linspace'``: ``torch.linspace(0, max_rate, n)`` in float32 (timm, E-SpikeFormer /
      Meta-SpikeFormer as upstream);
    * ``'ratio'``: ``max_rate * j / (n - 1)`` in Python floats (Spikformer V2).

    Args:
        max_rate (float): The rate of the last block, in [0, 1).
        num_blocks (int): Number of blocks (0 gives an empty list).
        rule (str): ``'linspace'`` or ``'ratio'``. Defaults to ``'linspace'``.
    """
    if not 0.0 <= max_rate < 1.0:
        raise ValueError(f'drop_path_rate must be in [0, 1), got {max_rate}')
    if rule not in DROP_PATH_RULES:
        raise ValueError(f'drop-path rule must be one of {DROP_PATH_RULES}, got {rule!r}')
    if num_blocks <= 0:
        return []
    if rule == 'linspace':
        return torch.linspace(0, max_rate, num_blocks).tolist()
    return [max_rate * j / max(num_blocks - 1, 1) for j in range(num_blocks)]


def drop_path(x: Tensor, drop_prob: float = 0.0, training: bool = False) -> Tensor:
    """Stochastic depth on a ``[T, B, ...]`` branch: drop whole samples, the same ones at every T.

    (Dropping along dim 0, as image-model helpers do, would drop time steps instead of samples.)
    """
    if drop_prob == 0.0 or not training:
        return x
    keep = 1.0 - drop_prob
    mask = x.new_empty((1, x.shape[1]) + (1, ) * (x.dim() - 2)).bernoulli_(keep)
    return x * mask / keep


class SpikeDropPath(nn.Module):
    """Module form of :func:`drop_path` for ``[T, B, ...]`` tensors."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= drop_prob < 1.0:
            raise ValueError(f'drop_prob must be in [0, 1), got {drop_prob}')
        self.drop_prob = float(drop_prob)

    def forward(self, x: Tensor) -> Tensor:
        return drop_path(x, self.drop_prob, self.training)

    def extra_repr(self) -> str:
        return f'drop_prob={self.drop_prob}'


class _Residuals(ExecutionModeMixin):
    """The residual sums of a block, ``x + branch(x)``."""

    def _residual(self, x: Tensor, out: Tensor, *branch: nn.Module) -> Tensor:
        """``x + out``. On the fast path with no backward to follow and no hooks on the branch
        modules, the sum goes into ``out``, the branch's own new tensor: one activation-sized
        tensor less to allocate and fault in per residual (1.05x on a 19M inference); IEEE
        addition commutes, so the bits are the same."""
        if (self.fast_path and not torch.is_grad_enabled() and out.shape == x.shape
                and out.dtype == x.dtype and out.stride() == x.stride()
                and out.untyped_storage().data_ptr() != x.untyped_storage().data_ptr()
                and not _observed(branch)):
            return out.add_(x)
        return x + out


@MODELS.register_module()
class SpikeConvBlock(_Residuals, nn.Module):
    """CNN block: ``x = x + SepConv(x)`` (optional), then ``x = x + MLP_kxk(x)``.

    The channel MLP is :class:`SpikeMLP` with 3x3 convs ``C -> mlp_ratio * C -> C``.

    Args:
        channels (int): Channels C.
        mlp_ratio (float): Hidden width of the channel MLP. Defaults to 4.
        kernel_size (int): Kernel of the channel MLP convs. Defaults to 3.
        bias (bool): Biases of the channel MLP convs. Defaults to False.
        sepconv (dict, optional): Keyword arguments of :class:`SpikeSepConv` (``kernel_size``,
            ``spike_dwconv``, ...), or None for no SepConv mixer (large E-SpikeFormer family,
            Spikformer V2 stem). Defaults to ``dict(kernel_size=7)``.
        neuron (dict): Neuron config. Defaults to ``dict(type='MultiSpike')``.
        drop_path (float): Stochastic depth of both branches. Defaults to 0.
        execution_mode (str, optional): ``'fast'`` or ``'plain'``; on the fast path inference
            adds the residuals into the branch outputs. Defaults to None:
            :func:`~mmspike.models.execution.default_execution_mode`.
    """

    def __init__(self, channels: int, mlp_ratio: float = 4, kernel_size: int = 3,
                 bias: bool = False, sepconv: Optional[dict] = dict(kernel_size=7),
                 neuron: Optional[dict] = dict(type='MultiSpike'),
                 drop_path: float = 0.0, execution_mode: Optional[str] = None) -> None:
        super().__init__()
        self.init_execution_mode(execution_mode)
        self.sepconv = (SpikeSepConv(channels, neuron=neuron, **sepconv)
                        if sepconv is not None else None)
        self.mlp = SpikeMLP(channels, int(channels * mlp_ratio), kernel_size=kernel_size,
                            bias=bias, neuron=neuron)
        self.drop_path = SpikeDropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        if self.sepconv is not None:
            x = self._residual(x, self.drop_path(self.sepconv(x)), self.sepconv, self.drop_path)
        return self._residual(x, self.drop_path(self.mlp(x)), self.mlp, self.drop_path)


@MODELS.register_module()
class SpikeTransformerBlock(_Residuals, nn.Module):
    """Spiking Transformer block on ``[T, B, C, H, W]`` maps::

        x = x + SepConv_k(x)                      # optional (E-SpikeFormer base family)
        x = x + LinearPair(N(x))                  # optional pre-mixer (E-SpikeFormer 83M)
        x = x + DropPath(gamma_1 * Attn(x))
        x = x + DropPath(gamma_2 * MLP(x))        # MLP: 1x1, C -> mlp_ratio * C -> C

    Args:
        channels (int): Channels C.
        num_heads (int): Attention heads. Defaults to 8.
        mlp_ratio (float): Hidden width of the MLP. Defaults to 4.
        attn_cfg (dict, optional): Further keyword arguments of :class:`SpikeDrivenAttention`
            (``value_ratio``, ``projection``, ``scale``, ``proj_bias``, ``order``).
            Defaults to None.
        sepconv_kernel (int, optional): Kernel of a :class:`SpikeSepConv` mixer before the
            attention; None for none. Defaults to None.
        pre_mixer (bool): Whether a spiking :class:`LinearPair` (``C -> r C -> C``) mixer
            precedes the attention. Defaults to False.
        pre_mixer_ratio (float): Hidden width ``r`` of the pre-mixer: 1 as upstream's 83M code
            writes it, 1.5 in its released 83M weights. Defaults to 1.
        neuron (dict): Neuron config. Defaults to ``dict(type='MultiSpike')``.
        attn_neuron (dict, optional): Neuron on the attention output. Defaults to ``neuron``.
        layer_scale_init_value (float): Initial value of the per-channel scales of the attention
            and MLP branches; 0 disables them. Defaults to 0.
        drop_path (float): Stochastic depth of the attention and MLP branches. Defaults to 0.
        execution_mode (str, optional): As :class:`SpikeConvBlock`'s. Defaults to None.
    """

    def __init__(self, channels: int, num_heads: int = 8, mlp_ratio: float = 4,
                 attn_cfg: Optional[dict] = None, sepconv_kernel: Optional[int] = None,
                 pre_mixer: bool = False, neuron: Optional[dict] = dict(type='MultiSpike'),
                 attn_neuron: Optional[dict] = None, layer_scale_init_value: float = 0.0,
                 drop_path: float = 0.0, pre_mixer_ratio: float = 1.0,
                 execution_mode: Optional[str] = None) -> None:
        super().__init__()
        self.init_execution_mode(execution_mode)
        if not pre_mixer_ratio > 0:
            raise ValueError(f'pre_mixer_ratio must be > 0, got {pre_mixer_ratio!r}')
        hidden = int(channels * pre_mixer_ratio)
        self.sepconv = (SpikeSepConv(channels, kernel_size=sepconv_kernel, neuron=neuron)
                        if sepconv_kernel else None)
        self.pre_mixer = (nn.Sequential(build_neuron(neuron),
                                        TimeDistributed(LinearPair(channels, hidden, channels)))
                          if pre_mixer else None)
        self.attn = SpikeDrivenAttention(channels, num_heads=num_heads, neuron=neuron,
                                         attn_neuron=attn_neuron, **(attn_cfg or {}))
        self.mlp = SpikeMLP(channels, int(channels * mlp_ratio), kernel_size=1, bias=True,
                            neuron=neuron)
        if layer_scale_init_value > 0:
            init = float(layer_scale_init_value)
            self.layer_scale1 = nn.Parameter(torch.full((channels, ), init))
            self.layer_scale2 = nn.Parameter(torch.full((channels, ), init))
        else:
            self.layer_scale1 = self.layer_scale2 = None
        self.drop_path = SpikeDropPath(drop_path) if drop_path > 0 else nn.Identity()

    @staticmethod
    def _scaled(x: Tensor, gamma: Optional[Tensor]) -> Tensor:
        return x if gamma is None else x * gamma.view(-1, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        if self.sepconv is not None:
            x = self._residual(x, self.sepconv(x), self.sepconv)
        if self.pre_mixer is not None:
            x = self._residual(x, self.pre_mixer(x), self.pre_mixer)
        x = self._residual(x, self.drop_path(self._scaled(self.attn(x), self.layer_scale1)),
                           self.attn, self.drop_path)
        return self._residual(x, self.drop_path(self._scaled(self.mlp(x), self.layer_scale2)),
                              self.mlp, self.drop_path)
