"""The ``[T, B, ...]`` time convention: one place that folds time into the batch and back.

Stateless layers (conv, BN, linear, pooling) run on ``T * B`` samples at once; neurons see ``[T, ...]``.
"""
from typing import Tuple

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
