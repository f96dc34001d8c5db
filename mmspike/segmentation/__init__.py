"""mmspike for semantic segmentation (mmseg): the spiking Semantic FPN head and the digit-canvas
segmentation dataset, on the core backbones and necks (:mod:`mmspike.models`, imported here). A
config loads it with::

    custom_imports = dict(imports=['mmspike.segmentation'], allow_failed_imports=False)
"""
from mmspike import models  # noqa: F401  (registers the core modules)
from . import datasets, heads  # noqa: F401
