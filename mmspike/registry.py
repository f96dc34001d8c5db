"""mmspike's registries, children of MMEngine's root registries (scope ``mmspike``).

Configs of mmpretrain, mmdet or mmseg use mmspike modules with::

    custom_imports = dict(imports=['mmspike.models'], allow_failed_imports=False)
    model = dict(backbone=dict(type='mmspike.ESpikeFormer', ...))

``locations`` lets MMEngine import the core lazily when ``mmspike`` is the default scope. Task
modules (heads, datasets, transforms of ``mmspike.classification`` / ``detection`` /
``segmentation`` / ``points``) register when their package is imported (``custom_imports``); they
are not import locations because each needs its own OpenMMLab library.
"""
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import Registry

MODELS = Registry('model', parent=MMENGINE_MODELS, scope='mmspike',
                  locations=['mmspike.models'])
DATASETS = Registry('dataset', parent=MMENGINE_DATASETS, scope='mmspike')
TRANSFORMS = Registry('transform', parent=MMENGINE_TRANSFORMS, scope='mmspike')
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, scope='mmspike',
                 locations=['mmspike.engine'])
RUNNERS = Registry('runner', parent=MMENGINE_RUNNERS, scope='mmspike',
                   locations=['mmspike.engine'])


def build_in_mmspike_scope(cfg: dict, registry: Registry = MODELS):
    """Build ``cfg`` from mmspike's registry whatever the runner's ``default_scope`` is.

    MMEngine resolves a bare ``type`` in the registry of the *current default scope* (mmdet's MODELS
    when an mmdet config runs), which cannot see its sibling mmspike. Sub-modules that mmspike modules
    build from config (a neuron inside a backbone) therefore pin ``_scope_='mmspike'``; a type with an
    explicit scope (``'mmdet.FPN'``) still goes where it says.
    """
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise TypeError(f'expected a config dict with a "type" key, got {cfg!r}')
    cfg = dict(cfg)
    cfg.setdefault('_scope_', 'mmspike')
    return registry.build(cfg)
