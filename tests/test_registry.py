"""mmspike modules resolve from the default scopes of mmpretrain, mmdet and mmseg."""
import importlib

import pytest
import torch
from mmengine.registry import MODELS as ROOT_MODELS
from mmengine.registry import DefaultScope

from mmspike.registry import MODELS

SCOPES = ['mmpretrain', 'mmdet', 'mmseg']


@pytest.fixture(params=SCOPES)
def scope_models(request):
    scope = request.param
    registry = importlib.import_module(f'{scope}.registry').MODELS
    importlib.import_module(f'{scope}.models')  # what a config's default_scope triggers
    importlib.import_module('mmspike.models')   # what custom_imports triggers
    with DefaultScope.overwrite_default_scope(scope):
        yield scope, registry


def test_mmspike_registry_is_child_of_mmengine_root():
    assert MODELS.parent is ROOT_MODELS
    assert MODELS.scope == 'mmspike'
    assert ROOT_MODELS.children['mmspike'] is MODELS


def test_nested_neuron_resolves_under_every_default_scope(scope_models):
    scope, registry = scope_models
    assert DefaultScope.get_current_instance().scope_name == scope
    backbone = registry.build(dict(type='mmspike.SpikingConvNet', in_channels=1,
                                   neuron=dict(type='MultiSpike', max_spikes=3)))
    neurons = [m for m in backbone.modules() if type(m).__name__ == 'MultiSpike']
    assert neurons and all(m.max_spikes == 3 for m in neurons)
    out = backbone(torch.randn(2, 1, 8, 8))[0]
    assert out.shape == (1, 2, 128, 2, 2)


def test_scoped_type_from_every_default_scope(scope_models):
    _, registry = scope_models
    neuron = registry.build(dict(type='mmspike.ILIF', leak=0.5))
    assert type(neuron).__name__ == 'ILIF' and neuron.leak == 0.5


def test_bare_mmspike_name_does_not_resolve_in_other_scope(scope_models):
    scope, registry = scope_models
    # Why sub-modules pin their scope: a bare name is looked up in the current scope's registry.
    with pytest.raises(KeyError):
        registry.build(dict(type='SpikingConvNet'))


def test_stock_module_inside_mmspike_scope():
    # mmspike's registry falls back to its parent for stock modules (e.g. torch activations via mmcv)
    import mmcv.cnn  # noqa: F401  registers activations in mmengine's root MODELS
    act = MODELS.build(dict(type='ReLU'))
    assert isinstance(act, torch.nn.ReLU)
