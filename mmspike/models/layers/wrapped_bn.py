"""Norm layers that compute more than a BatchNorm (padding, active-site masks) around one.

MMEngine's ``sync_bn`` conversion (:func:`mmengine.model.convert_sync_batchnorm`, applied by the
``Runner`` when ``cfg.sync_bn`` is set) replaces every ``_BatchNorm`` instance by a plain
``SyncBatchNorm`` built from its sizes, so a BatchNorm *subclass* that pads or masks would lose
that behaviour on a multi-GPU run. :class:`WrappedBatchNorm` is therefore not a ``_BatchNorm``: it
holds an ``nn.BatchNorm2d`` child ``bn`` that the conversion turns into a ``SyncBatchNorm`` (its
statistics are then synchronised) while the wrapper's own computation stays.

The child is invisible in the state dict: its keys are the wrapper's own (``weight``, ``bias``,
``running_mean``, ``running_var``, ``num_batches_tracked``), exactly as for a BatchNorm, so
checkpoints, converters and ``fuse``-style code see no change. ``_BatchNorm``-based tools (weight
decay of norms, BN calibration, eps/momentum setters) find the child as a BatchNorm.
"""
from typing import Optional

from torch import Tensor, nn

_BN_ATTRS = ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked', 'eps',
             'momentum', 'num_features', 'affine', 'track_running_stats')


def _child_prefix(prefix: str) -> str:
    return prefix + 'bn.'


class WrappedBatchNorm(nn.Module):
    """Base of norm layers built around a BatchNorm child ``bn`` (see the module docs).

    Args:
        num_features (int): Channels C.
        eps (float): Defaults to 1e-5.
        momentum (float, optional): Defaults to 0.1.
        affine (bool): Defaults to True.
        track_running_stats (bool): Defaults to True.
        bn (nn.Module, optional): An existing BatchNorm to wrap (shares its parameters and
            buffers); the other arguments are then ignored. Defaults to None.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: Optional[float] = 0.1,
                 affine: bool = True, track_running_stats: bool = True,
                 bn: Optional[nn.Module] = None) -> None:
        super().__init__()
        if bn is None:
            bn = nn.BatchNorm2d(num_features, eps, momentum, affine, track_running_stats)
        elif not isinstance(bn, nn.modules.batchnorm._BatchNorm):
            raise TypeError(f'{type(self).__name__} wraps a BatchNorm, got {type(bn).__name__}')
        self.bn = bn
        self.register_state_dict_post_hook(_hide_child_keys)
        self.register_load_state_dict_pre_hook(_restore_child_keys)

    def batch_norm(self, x: Tensor) -> Tensor:
        """The wrapped BatchNorm (a SyncBatchNorm after MMEngine's ``sync_bn`` conversion)."""
        return self.bn(x)

    def extra_repr(self) -> str:
        return f'{self.num_features}, eps={self.eps}'


def _bn_property(name: str) -> property:

    def get(self):
        return getattr(self.bn, name)

    def set(self, value):
        setattr(self.bn, name, value)

    return property(get, set, doc=f'``bn.{name}`` of the wrapped BatchNorm.')


for _name in _BN_ATTRS:
    setattr(WrappedBatchNorm, _name, _bn_property(_name))


def _hide_child_keys(module: nn.Module, state_dict: dict, prefix: str, local_metadata) -> None:
    child = _child_prefix(prefix)
    for key in [k for k in state_dict if k.startswith(child)]:
        state_dict[prefix + key[len(child):]] = state_dict.pop(key)
    meta = getattr(state_dict, '_metadata', None)
    if meta is not None and child[:-1] in meta:
        meta[prefix[:-1] if prefix else ''] = meta.pop(child[:-1])


def _restore_child_keys(module: nn.Module, state_dict: dict, prefix: str, local_metadata,
                        strict, missing_keys, unexpected_keys, error_msgs) -> None:
    child = _child_prefix(prefix)
    for name in ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked'):
        if prefix + name in state_dict:
            state_dict[child + name] = state_dict.pop(prefix + name)
    meta = getattr(state_dict, '_metadata', None)
    if meta is not None and prefix[:-1] in meta and child[:-1] not in meta:
        # BatchNorm reads its version from here (num_batches_tracked of old checkpoints)
        meta[child[:-1]] = meta[prefix[:-1]]
