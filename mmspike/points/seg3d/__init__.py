"""LiDAR segmentation with mmdet3d: E-3DSNN on SemanticKITTI.

Importing this package imports mmdet3d (requirements/points.txt) and :mod:`mmspike.points`; a
config loads it with::

    custom_imports = dict(imports=['mmspike.points.seg3d'], allow_failed_imports=False)

The segmentor, head, dataset, transforms and metric are mmdet3d's (``MinkUNet``,
``MinkUNetHead``, ``SemanticKittiDataset``, ``LoadPointsFromFile``, ``LoadAnnotations3D``,
``PointSegClassMapping``, ``SegMetric``); mmspike adds the backbone
(:class:`~mmspike.points.models.E3DSNNUNet`), :class:`GridSampleSegDataPreprocessor` (mmdet3d's
``minkunet`` voxelization runs on CUDA only) and :class:`SemanticKittiSegDataset` (plain-dict
meta information, so checkpoints load weights-only).

Note: importing mmdet3d's models replaces spconv's ``SparseModule._load_from_state_dict`` (mmdet3d
1.4.0, ``register_spconv2``): in that process a state dict without version-2 metadata gets its
sparse conv kernels permuted from mmcv's spconv-1 layout. Checkpoints saved by the runner carry
that metadata; a converted upstream state dict needs it too (see
tests/test_points/test_e3dsnn_seg.py).
"""
import mmspike.points  # noqa: F401  (registers the E3DSNN modules)

from .data_preprocessor import GridSampleSegDataPreprocessor
from .datasets import SemanticKittiSegDataset

__all__ = ['GridSampleSegDataPreprocessor', 'SemanticKittiSegDataset']
