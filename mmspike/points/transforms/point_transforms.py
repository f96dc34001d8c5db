"""Point-cloud transforms of the E-3DSNN ModelNet40 recipe, Spike Voxel Coding among them.

Every transform reads and writes ``results['points']``: a float32 ``[N, C]`` array whose first three
columns are xyz (the others, e.g. normals, are carried along). Upstream (Pointcept) pipeline of
``cls-E3DSNN-v1m1-0-T/S``: ``NormalizeCoord -> RandomScale [0.9, 1.1] -> RandomShift +-0.2 ->
GridSample 0.01 (one random point per voxel) -> features = xyz + normal``; here
``NormalizePoints -> RandomScalePoints -> RandomShiftPoints -> SpikeVoxelCoding ->
PackPointsInputs``.
"""
from typing import Sequence, Tuple, Union

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmpretrain.structures import DataSample

from mmspike.registry import TRANSFORMS

__all__ = ['NormalizePoints', 'RandomScalePoints', 'RandomShiftPoints', 'SpikeVoxelCoding',
           'PackPointsInputs']


def _points(results: dict, name: str) -> np.ndarray:
    pts = results.get('points')
    if not isinstance(pts, np.ndarray) or pts.ndim != 2 or pts.shape[1] < 3:
        shape = getattr(pts, 'shape', type(pts).__name__)
        raise ValueError(f'{name}: results["points"] must be an [N, C >= 3] array (xyz first), '
                         f'got {shape}')
    if pts.shape[0] == 0:
        raise ValueError(f'{name}: empty point cloud ({results.get("points_path", "")})')
    return pts


@TRANSFORMS.register_module()
class NormalizePoints(BaseTransform):
    """Centre xyz on their mean and scale them into the unit sphere: ``p' = (p - mean) / r`` with
    ``r = max_i |p_i - mean|`` (upstream ``NormalizeCoord``). A cloud of one repeated point
    (``r = 0``) is an error."""

    def transform(self, results: dict) -> dict:
        pts = _points(results, 'NormalizePoints').copy()
        xyz = pts[:, :3] - pts[:, :3].mean(0)
        radius = float(np.sqrt((xyz**2).sum(1)).max())
        if not radius > 0:
            raise ValueError('NormalizePoints: all points coincide '
                             f'({results.get("points_path", "")})')
        pts[:, :3] = xyz / radius
        results['points'] = pts
        return results


@TRANSFORMS.register_module()
class RandomScalePoints(BaseTransform):
    """Multiply xyz by ``s ~ U(scale)`` (one factor, or one per axis if ``anisotropic``).

    Args:
        scale (tuple[float, float]): Defaults to (0.9, 1.1) (upstream's ModelNet40 recipe).
        anisotropic (bool): Defaults to False.
    """

    def __init__(self, scale: Tuple[float, float] = (0.9, 1.1), anisotropic: bool = False):
        if len(scale) != 2 or not 0 < scale[0] <= scale[1]:
            raise ValueError(f'scale must be (low, high) with 0 < low <= high, got {scale}')
        self.scale = tuple(scale)
        self.anisotropic = anisotropic

    def transform(self, results: dict) -> dict:
        pts = _points(results, 'RandomScalePoints').copy()
        s = np.random.uniform(*self.scale, size=3 if self.anisotropic else 1)
        pts[:, :3] = pts[:, :3] * s.astype(pts.dtype)
        results['points'] = pts
        return results


@TRANSFORMS.register_module()
class RandomShiftPoints(BaseTransform):
    """Add one random offset ``t_a ~ U(shift[a])`` to each axis of xyz.

    Args:
        shift (sequence of 3 (low, high)): Defaults to +-0.2 on every axis (upstream's recipe).
    """

    def __init__(self, shift: Sequence[Tuple[float, float]] = ((-0.2, 0.2), ) * 3):
        if len(shift) != 3 or any(len(s) != 2 or s[0] > s[1] for s in shift):
            raise ValueError(f'shift must be three (low, high) pairs, got {shift}')
        self.shift = tuple(tuple(s) for s in shift)

    def transform(self, results: dict) -> dict:
        pts = _points(results, 'RandomShiftPoints').copy()
        t = np.array([np.random.uniform(lo, hi) for lo, hi in self.shift], dtype=pts.dtype)
        pts[:, :3] = pts[:, :3] + t
        results['points'] = pts
        return results


@TRANSFORMS.register_module()
class SpikeVoxelCoding(BaseTransform):
    """Spike Voxel Coding, data half: grid-sample a point cloud into sparse voxels.

    Voxel coordinates are ``floor(xyz / grid_size)`` shifted so that the smallest is 0 (upstream
    ``GridSample``). The feature of a voxel is all columns of one of its points (xyz + normal, as
    upstream's ``feat_keys=("coord", "normal")``), chosen by ``mode``:

    - ``'random'``: a uniformly random point of the voxel (upstream; it samples this way in
      training *and* test, ``mode="train"`` in both pipelines of its configs);
    - ``'first'``: the first point in file order (deterministic);
    - ``'mean'``: the mean of the voxel's points.

    The model half of SVC, the three submanifold spike convs that turn these real-valued voxel
    features into spikes, is the first part of :class:`~mmspike.points.models.E3DSNN`
    (:class:`mmspike.models.layers.SpikeVoxelCoding`).

    Adds ``voxel_coords`` (int32 ``[M, 3]``) and ``voxel_feats`` (float32 ``[M, C]``).

    Args:
        grid_size (float | sequence[float]): Voxel edge (0.01 on ModelNet40, unit-sphere
            coordinates). Defaults to 0.01.
        mode (str): ``'random'``, ``'first'`` or ``'mean'``. Defaults to ``'random'``.
    """
    MODES = ('random', 'first', 'mean')

    def __init__(self, grid_size: Union[float, Sequence[float]] = 0.01,
                 mode: str = 'random') -> None:
        grid = np.broadcast_to(np.asarray(grid_size, dtype=np.float64), (3, ))
        if not (grid > 0).all():
            raise ValueError(f'grid_size must be > 0, got {grid_size}')
        if mode not in self.MODES:
            raise ValueError(f'mode must be one of {self.MODES}, got {mode!r}')
        self.grid = grid
        self.mode = mode

    def transform(self, results: dict) -> dict:
        pts = _points(results, 'SpikeVoxelCoding')
        if not np.isfinite(pts).all():
            raise ValueError('SpikeVoxelCoding: the point cloud holds NaN or Inf '
                             f'({results.get("points_path", "")})')
        coords = np.floor(pts[:, :3] / self.grid).astype(np.int64)
        coords -= coords.min(0)
        order = np.random.permutation(len(pts)) if self.mode == 'random' else np.arange(len(pts))
        voxels, first, inverse = np.unique(coords[order], axis=0, return_index=True,
                                           return_inverse=True)
        if self.mode == 'mean':
            inverse = inverse.reshape(-1)
            sums = np.zeros((len(voxels), pts.shape[1]), dtype=np.float64)
            np.add.at(sums, inverse, pts[order])
            feats = sums / np.bincount(inverse, minlength=len(voxels))[:, None]
        else:
            feats = pts[order[first]]
        results['voxel_coords'] = voxels.astype(np.int32)
        results['voxel_feats'] = feats.astype(np.float32)
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(grid_size={self.grid.tolist()}, mode={self.mode!r})'


@TRANSFORMS.register_module()
class PackPointsInputs(BaseTransform):
    """Pack a sample for :class:`~mmspike.points.models.PointsDataPreprocessor`.

    ``inputs`` is ``dict(coords=, feats=)`` (tensors) when the sample was voxelized, else the
    ``[N, C]`` point tensor; ``data_samples`` is an mmpretrain ``DataSample`` with ``gt_label``
    and the meta keys that exist among ``meta_keys``.

    Args:
        meta_keys (sequence[str]): Defaults to ``('sample_idx', 'points_path')``.
    """

    def __init__(self, meta_keys: Sequence[str] = ('sample_idx', 'points_path')) -> None:
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        if 'voxel_coords' in results:
            inputs = dict(coords=torch.from_numpy(results['voxel_coords']),
                          feats=torch.from_numpy(results['voxel_feats']))
        else:
            inputs = torch.from_numpy(np.ascontiguousarray(
                _points(results, 'PackPointsInputs'), dtype=np.float32))
        sample = DataSample()
        if 'gt_label' in results:
            sample.set_gt_label(results['gt_label'])
        sample.set_metainfo({k: results[k] for k in self.meta_keys if k in results})
        return dict(inputs=inputs, data_samples=sample)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(meta_keys={self.meta_keys})'
