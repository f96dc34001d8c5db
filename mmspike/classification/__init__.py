"""mmspike for classification (mmpretrain): the distillation head and classifier, the spike-MAE
self-supervised algorithm, event-data preprocessing, and the classification / event datasets and
transforms. Importing this package registers them; a config loads it with::

    custom_imports = dict(imports=['mmspike.classification'], allow_failed_imports=False)

It imports the core (:mod:`mmspike.models`: neurons, layers, backbones, necks) and mmpretrain.
"""
from mmspike import models  # noqa: F401  (registers the core modules)
from . import classifiers, data_preprocessors, datasets, heads, selfsup, transforms  # noqa: F401
