"""mmspike for detection (mmdet): the SpikeYOLO head and the digit-canvas COCO dataset. The
backbones and necks a detector uses (E-SpikeFormer, SpikeFPN, SpikeYOLO's backbone and PAN) are
core modules, registered by :mod:`mmspike.models`, which this package imports. A config loads it
with::

    custom_imports = dict(imports=['mmspike.detection'], allow_failed_imports=False)
"""
from mmspike import models  # noqa: F401  (registers the core modules)
from . import datasets, heads  # noqa: F401
