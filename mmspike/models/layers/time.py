"""The ``[T, B, ...]`` time convention: one place that folds time into the batch and back.

Stateless layers (conv, BN, linear, pooling) run on ``T * B`` samples at once; neurons see ``[T, ...]``.

**The input-layout rule** of every module that accepts both time-major and plain feature maps
(necks, heads; :func:`as_time_major`): the rank decides, and nothing else is guessed.

* 5-D is a time-major map ``[T, B, C, H, W]``;
* 4-D is a plain map ``[B, C, H, W]``, read as one time step (``T = 1``);
* token sequences ``[T, B, N, C]`` are never inferred from the rank: a module that reads tokens
  takes them only when told so by its ``input_layout='tokens'`` argument;
* any other rank, and a channel count that differs from the one the module was built for,
  is a ``ValueError`` naming the module and the shape.
"""
from typing import Optional, Tuple

import torch
from torch import Tensor, nn


def fold_time(x: Tensor) -> Tuple[Tensor, int]:
    """``[T, B, ...] -> [T * B, ...]``; returns the folded tensor and ``T``. No copy (a view)."""
    if x.dim() < 3:
        raise ValueError(f'expected a [T, B, ...] tensor, got shape {tuple(x.shape)}')
    return x.flatten(0, 1), x.shape[0]


def unfold_time(x: Tensor, T: int) -> Tensor:
    """``[T * B, ...] -> [T, B, ...]``."""
    if x.shape[0] % T:
        raise ValueError(f'batch {x.shape[0]} is not a multiple of T={T}')
    return x.view(T, x.shape[0] // T, *x.shape[1:])


def to_time_sequence(x: Tensor, T: int, static_dims: int = 4) -> Tensor:
    """Bring a backbone input to ``[T, B, ...]``.

    A static ``[B, C, H, W]`` image (``static_dims`` dimensions) is repeated ``T`` times (a view, no
    copy); a ``[T', B, C, H, W]`` event tensor is passed through as it is.
    """
    if x.dim() == static_dims:
        return x.unsqueeze(0).expand(T, *x.shape)
    if x.dim() == static_dims + 1:
        return x
    raise ValueError(f'expected a [B, C, H, W] image or a [T, B, C, H, W] sequence, '
                     f'got shape {tuple(x.shape)}')


def as_time_major(x: Tensor, who: str, channels: Optional[int] = None) -> Tensor:
    """Apply the input-layout rule (module docs): ``[T, B, C, H, W]`` as it is, ``[B, C, H, W]``
    as ``[1, B, C, H, W]`` (a view).

    Args:
        x (Tensor): A 5-D or 4-D feature map.
        who (str): The module, for errors.
        channels (int, optional): The channel count C the module expects. Defaults to None
            (not checked).
    """
    if x.dim() == 4:
        x = x.unsqueeze(0)
    elif x.dim() != 5:
        raise ValueError(f'{who} expects a [T, B, C, H, W] or [B, C, H, W] map, got shape '
                         f'{tuple(x.shape)} (token sequences need input_layout=\'tokens\' '
                         f'where a module reads them)')
    if channels is not None and x.shape[2] != channels:
        raise ValueError(f'{who} expects {channels} channels at dim 2 of [T, B, C, H, W] (dim 1 '
                         f'of [B, C, H, W]), got shape {tuple(x.shape)}')
    return x


class TimeDistributed(nn.Module):
    """Run a stateless module on ``[T, B, ...]`` by folding T into the batch."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: Tensor) -> Tensor:
        y, T = fold_time(x)
        return unfold_time(self.module(y), T)


def reduce_time(x: Tensor, mode: str = 'mean') -> Tensor:
    """Reduce ``[T, B, ...]`` over T (``'mean'`` or ``'sum'``) for heads that never see time."""
    if mode == 'mean':
        return x.mean(0)
    if mode == 'sum':
        return x.sum(0)
    raise ValueError(f"time reduction must be 'mean' or 'sum', got {mode!r}")
