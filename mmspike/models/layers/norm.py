"""Norm layers from a config dict without mmcv (the core imports only torch and mmengine).

Accepts the mmcv-style configs OpenMMLab users write (``dict(type='BN')``, ``'SyncBN'``,
``dict(type='GN', num_groups=32)``, ``requires_grad``, ``eps``, ``momentum``) and builds the
torch module directly. mmcv's registry is not consulted, so a norm registered only there is
refused by name rather than silently replaced.
"""
from typing import Optional

from torch import nn

_NORMS = {
    'BN': nn.BatchNorm2d,
    'BN2d': nn.BatchNorm2d,
    'SyncBN': nn.SyncBatchNorm,
    'GN': nn.GroupNorm,
    'IN': nn.InstanceNorm2d,
    'IN2d': nn.InstanceNorm2d,
}


def build_norm(cfg: Optional[dict], num_features: int) -> nn.Module:
    """Build a 2-D norm layer over ``num_features`` channels from ``cfg``.

    Args:
        cfg (dict, optional): ``type`` one of ``'BN'``, ``'BN2d'``, ``'SyncBN'``, ``'GN'``
            (needs ``num_groups``), ``'IN'``, ``'IN2d'``; optional ``requires_grad`` (bool) and
            the layer's own keyword arguments (``eps``, ``momentum``, ``affine``...). None gives
            ``nn.Identity``.
        num_features (int): Channels.
    """
    if cfg is None:
        return nn.Identity()
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise TypeError(f'norm_cfg must be a dict with a "type" key, got {cfg!r}')
    cfg = dict(cfg)
    kind = cfg.pop('type')
    requires_grad = cfg.pop('requires_grad', True)
    if kind not in _NORMS:
        raise KeyError(f'unknown norm type {kind!r}; mmspike builds {sorted(_NORMS)}')
    if kind == 'GN':
        if 'num_groups' not in cfg:
            raise KeyError("norm_cfg of type 'GN' needs num_groups")
        layer = nn.GroupNorm(num_channels=num_features, **cfg)
    else:
        layer = _NORMS[kind](num_features, **cfg)
    for p in layer.parameters():
        p.requires_grad = requires_grad
    return layer
