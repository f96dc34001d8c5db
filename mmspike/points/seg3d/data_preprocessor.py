"""Voxelize LiDAR scans for mmdet3d's ``MinkUNet`` segmentor on any device."""
from typing import Dict, List

import torch
from mmdet3d.models.data_preprocessors import Det3DDataPreprocessor

from torch import Tensor

from mmspike.registry import MODELS


@MODELS.register_module()
class GridSampleSegDataPreprocessor(Det3DDataPreprocessor):
    """mmdet3d's ``Det3DDataPreprocessor`` with a grid sampling that keeps one point per voxel.

    mmdet3d 1.4.0's ``voxel_type='minkunet'`` does the same job but moves its indices to CUDA
    unconditionally; this one stays on the points' device. Per scan::

        grid = floor((xyz - min(xyz)) / voxel_size)        (as upstream Pointcept's GridSample)
        voxels = the first point of each occupied cell (features: all point channels)

    and, like mmdet3d, it sets on each data sample ``gt_pts_seg.voxel_semantic_mask`` (the label
    of that point, for the loss), ``point2voxel_map`` (the voxel of every point, to give every
    point its voxel's prediction) and ``batch_idx``. ``voxels['coors']`` is ``[M, 4]`` with the
    batch index first.

    Args:
        voxel_size (float | sequence of 3 floats): Cell size in metres. Defaults to 0.05.
        max_voxels (int, optional): In training, keep at most this many voxels per scan (a random
            subset). Defaults to None.
        **kwargs: Other arguments of ``Det3DDataPreprocessor`` (``voxel`` and ``voxel_type``
            are fixed here).
    """

    def __init__(self, voxel_size=0.05, max_voxels=None, **kwargs) -> None:
        for key in ('voxel', 'voxel_type', 'voxel_layer'):
            if key in kwargs:
                raise ValueError(f'GridSampleSegDataPreprocessor sets {key} itself; got {key}='
                                 f'{kwargs[key]!r}')
        super().__init__(voxel=False, max_voxels=max_voxels, **kwargs)
        size = [float(voxel_size)] * 3 if isinstance(voxel_size, (int, float)) \
            else [float(v) for v in voxel_size]
        if len(size) != 3 or min(size) <= 0:
            raise ValueError(f'voxel_size must be a positive number or 3 of them, got '
                             f'{voxel_size!r}')
        self.voxel_size = size
        # Det3DDataPreprocessor voxelizes only when self.voxel is set; it calls self.voxelize
        self.voxel = True
        self.voxel_type = 'grid_sample'

    @torch.no_grad()
    def voxelize(self, points: List[Tensor], data_samples) -> Dict[str, Tensor]:
        voxels, coors = [], []
        for i, (pts, sample) in enumerate(zip(points, data_samples)):
            if pts.dim() != 2 or pts.shape[1] < 3 or pts.shape[0] == 0:
                raise ValueError(f'scan {i}: expected [N >= 1, C >= 3] points, got '
                                 f'{tuple(pts.shape)}')
            size = pts.new_tensor(self.voxel_size)
            grid = torch.floor((pts[:, :3] - pts[:, :3].min(0).values) / size).long()
            cells, inverse = torch.unique(grid, dim=0, return_inverse=True)
            # the first point of each cell: the smallest point index mapped to it
            n = torch.arange(pts.shape[0], device=pts.device)
            first = torch.full((cells.shape[0], ), pts.shape[0], dtype=torch.long,
                               device=pts.device).scatter_reduce_(0, inverse, n, 'amin')
            point2voxel = inverse
            if self.training and self.max_voxels is not None and len(first) > self.max_voxels:
                keep = torch.randperm(len(first), device=pts.device)[:self.max_voxels]
                first = first[keep]
                point2voxel = None  # points of dropped voxels have no voxel; training only
            if hasattr(sample, 'gt_pts_seg') and 'pts_semantic_mask' in sample.gt_pts_seg:
                sample.gt_pts_seg.voxel_semantic_mask = \
                    sample.gt_pts_seg.pts_semantic_mask[first]
            c = torch.cat([grid.new_full((len(first), 1), i), grid[first]], 1)
            sample.batch_idx = c[:, 0]
            if point2voxel is not None:
                sample.point2voxel_map = point2voxel
            voxels.append(pts[first])
            coors.append(c)
        return dict(voxels=torch.cat(voxels), coors=torch.cat(coors).int())
