"""Batch voxelized point clouds into one spconv ``SparseConvTensor``."""
from typing import List, Sequence

import torch
from mmengine.model import BaseDataPreprocessor
from torch import Tensor

from mmspike.models.layers.spconv_support import require_spconv
from mmspike.registry import MODELS


def sparse_batch(coords: Sequence[Tensor], feats: Sequence[Tensor], shape_multiple: int = 16):
    """One ``SparseConvTensor`` from per-sample voxel coordinates ``[M_i, 3]`` and features.

    The batch index is prepended to the coordinates (``[sum M_i, 4]`` int32, row-major as spconv
    requires); the spatial shape is the largest coordinate + 1, rounded up to a multiple of
    ``shape_multiple`` (``2 ** stages``, so that no stride-2 stage reaches an empty grid).
    """
    spconv = require_spconv()
    if len(coords) == 0 or len(coords) != len(feats):
        raise ValueError(f'need one coordinate and one feature tensor per sample, got '
                         f'{len(coords)} and {len(feats)}')
    indices = []
    for b, (c, f) in enumerate(zip(coords, feats)):
        if c.dim() != 2 or c.shape[1] != 3 or f.dim() != 2 or f.shape[0] != c.shape[0]:
            raise ValueError(f'sample {b}: voxel coords must be [M, 3] and feats [M, C], got '
                             f'{tuple(c.shape)} and {tuple(f.shape)}')
        if c.shape[0] == 0:
            raise ValueError(f'sample {b} has no voxel')
        if bool((c < 0).any()):
            raise ValueError(f'sample {b} has negative voxel coordinates')
        indices.append(torch.cat([c.new_full((c.shape[0], 1), b), c], 1))
    indices = torch.cat(indices).int().contiguous()
    extent = (indices[:, 1:].max(0).values + 1).tolist()
    m = max(int(shape_multiple), 1)
    shape = [max(m, -(-int(e) // m) * m) for e in extent]
    return spconv.SparseConvTensor(torch.cat(list(feats)).contiguous(), indices, shape, len(coords))


@MODELS.register_module()
class PointsDataPreprocessor(BaseDataPreprocessor):
    """Move point-cloud samples to the device and batch them.

    Samples packed by :class:`~mmspike.points.transforms.PackPointsInputs` after the
    ``SpikeVoxelCoding`` transform carry ``dict(coords=[M, 3] int, feats=[M, C])``; they become one
    ``SparseConvTensor``. Samples without voxelization (``[N, C]`` point tensors) stay a list, which
    :class:`~mmspike.points.models.E3DSNN` voxelizes itself.

    Args:
        shape_multiple (int): See :func:`sparse_batch`. Defaults to 16 (four stride-2 stages).
        non_blocking (bool): Defaults to False.
        batch_augments (dict, optional): Must be None (mmpretrain's ``ImageClassifier`` passes
            its ``train_cfg.augments``; Mixup / CutMix do not apply to voxels). Defaults to None.
    """

    def __init__(self, shape_multiple: int = 16, non_blocking: bool = False,
                 batch_augments=None) -> None:
        if batch_augments is not None:
            raise ValueError('PointsDataPreprocessor: batch augments (Mixup, CutMix) are image '
                             f'operations, not defined on voxels; got {batch_augments}')
        super().__init__(non_blocking=non_blocking)
        self.shape_multiple = shape_multiple

    def forward(self, data: dict, training: bool = False) -> dict:
        data = self.cast_data(data)
        inputs = data['inputs']
        # pseudo_collate turns per-sample dicts into a dict of lists
        if isinstance(inputs, dict):
            if set(inputs) != {'coords', 'feats'}:
                raise KeyError(f'voxel inputs need the keys coords and feats, got {sorted(inputs)}')
            batch = sparse_batch(inputs['coords'], inputs['feats'], self.shape_multiple)
        elif isinstance(inputs, (list, tuple)) and all(isinstance(p, Tensor) for p in inputs):
            batch: List[Tensor] = [p.float() for p in inputs]
        else:
            raise TypeError('PointsDataPreprocessor expects voxel dicts (coords, feats) or a list '
                            f'of [N, C] point tensors, got {type(inputs).__name__}')
        return dict(inputs=batch, data_samples=data.get('data_samples'))
