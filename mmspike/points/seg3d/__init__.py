"""LiDAR segmentation with mmdet3d: E-3DSNN on SemanticKITTI.

Importing this package imports mmdet3d (requirements/points.txt) and :mod:`mmspike.points`; a
config loads it with::

    custom_imports = dict(imports=['mmspike.points.seg3d'], allow_failed_imports=False)

The segmentor, head, dataset, transforms and metric are mmdet3d's (``MinkUNet``,
``MinkUNetHead``, ``SemanticKittiDataset``, ``LoadPointsFromFile``, ``LoadAnnotations3D``,
``PointSegClassMapping``, ``SegMetric``); mmspike adds the backbone
(:class:`~mmspike.points.models.E3DSNNUNet`) and :class:`GridSampleSegDataPreprocessor`.
"""
import mmspike.points  # noqa: F401  (registers the E3DSNN modules)

from .data_preprocessor import GridSampleSegDataPreprocessor

__all__ = ['GridSampleSegDataPreprocessor']
