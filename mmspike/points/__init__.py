"""mmspike for point clouds: the E-3DSNN backbone, the voxel pooling neck and data preprocessor,
the ModelNet40 dataset and the point transforms (Spike Voxel Coding). Importing this package
registers them; a config loads it with::

    custom_imports = dict(imports=['mmspike.points'], allow_failed_imports=False)

It imports the core (:mod:`mmspike.models`), spconv (only when a sparse model runs) and mmpretrain
(the classifier, head, metric and the dataset base class).
"""
import mmspike.models  # noqa: F401  (registers the core modules)

from . import datasets, models, transforms  # noqa: F401
