from typing import Union

from torch import nn

from mmspike.registry import build_in_mmspike_scope


def build_neuron(cfg: Union[dict, nn.Module, None]) -> nn.Module:
    """Build a neuron from a config dict through mmspike's registry.

    Sub-modules are always built in the ``mmspike`` scope, so ``type='MultiSpike'`` resolves whatever
    the runner's ``default_scope`` is (mmpretrain, mmdet, mmseg). ``None`` builds an identity (a
    layer fed by real values, e.g. the first conv of a stem).
    """
    if cfg is None:
        return nn.Identity()
    if isinstance(cfg, nn.Module):
        return cfg
    return build_in_mmspike_scope(cfg)
