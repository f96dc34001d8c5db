"""Spike Sparse Convolution in 3D (E-3DSNN) and Spike Voxel Coding.

Point clouds are voxelized (:func:`voxelize`) into an ``spconv.pytorch.SparseConvTensor`` whose
features are real values; every later layer is ``integer neuron -> spconv conv -> BatchNorm1d``
on the active voxels only (:class:`SpikeSparseConv3d`). Residuals are added to the membrane
potential (the BN output), before the next neuron.

E-3DSNN runs one time step: the features ``[M, C]`` of a sparse tensor are treated as a single
step (``[1, M, C]`` for the neuron). Needs spconv, imported when a layer is built; building one
installs mmspike's CPU support into spconv
(:func:`~mmspike.models.layers.spconv_support.ensure_spconv_cpu_support`: a correct CPU conv at any
thread count, and a backward without a GPU).
"""
from typing import Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from mmspike.registry import MODELS
from ..neurons import build_neuron
from .spconv_support import import_spconv, require_spconv
from .ssc import check_spconv_supported

__all__ = ['E3DSNN_NEURON', 'voxelize', 'batch_voxelize', 'run_spconv', 'SpikeSparseConv3d',
           'SpikeSparseBasicBlock3d', 'SpikeVoxelCoding']

#: The E-3DSNN neuron: integer spikes 0..4, not normalised, gradient on 0 < u < 4.
E3DSNN_NEURON = dict(type='MultiSpike', max_spikes=4, norm=1, grad_window='open')


def run_spconv(module: nn.Module, x: 'spconv.SparseConvTensor') -> 'spconv.SparseConvTensor':
    """Call an spconv module, raising a clear error where spconv has no kernel on the device."""
    check_spconv_supported(module, x.features)
    return module(x)


def voxelize(points: Tensor, grid_size: Union[float, Sequence[float]],
             coord_dims: int = 3) -> Tuple[Tensor, Tensor, Tensor]:
    """Grid-sample one point cloud.

    Voxel coordinates are ``floor(xyz / grid_size)`` shifted to start at 0; the feature of a voxel
    is the mean of its points' features (all columns of ``points``, xyz included). Upstream's
    ``GridSample`` keeps one random point per voxel in training; the mean is deterministic.

    Args:
        points (Tensor): ``[N, C]`` points whose first ``coord_dims`` columns are the coordinates.
        grid_size (float | sequence[float]): Voxel edge length (one, or one per axis).
        coord_dims (int): Number of coordinate columns. Defaults to 3.

    Returns:
        tuple[Tensor, Tensor, Tensor]: voxel coordinates ``[M, coord_dims]`` (int64), voxel
        features ``[M, C]`` and, for every point, the row of its voxel ``[N]``.
    """
    if points.dim() != 2 or points.shape[1] < coord_dims:
        raise ValueError(f'points must be [N, C >= {coord_dims}], got {tuple(points.shape)}')
    if points.shape[0] == 0:
        raise ValueError('cannot voxelize an empty point cloud')
    grid = torch.as_tensor(grid_size, dtype=points.dtype, device=points.device)
    if bool((grid <= 0).any()):
        raise ValueError(f'grid_size must be > 0, got {grid_size}')
    coords = torch.floor(points[:, :coord_dims] / grid).long()
    coords = coords - coords.min(0).values
    coords, inverse = torch.unique(coords, dim=0, return_inverse=True)
    counts = torch.bincount(inverse, minlength=coords.shape[0]).to(points.dtype)
    feats = points.new_zeros(coords.shape[0], points.shape[1]).index_add_(0, inverse, points)
    return coords, feats / counts[:, None], inverse


def batch_voxelize(point_clouds: Sequence[Tensor], grid_size: Union[float, Sequence[float]],
                   shape_multiple: int = 1) -> 'spconv.SparseConvTensor':
    """Voxelize a batch of point clouds into one ``SparseConvTensor`` (3D).

    Args:
        point_clouds (sequence[Tensor]): ``[N_i, C]`` clouds, xyz first.
        grid_size (float | sequence[float]): Voxel size.
        shape_multiple (int): The spatial shape is rounded up to a multiple of this (``2 ** n``
            for ``n`` stride-2 downsamplings, so none of them reaches an empty grid).
            Defaults to 1.
    """
    spconv = require_spconv(cpu_support=False)
    if isinstance(point_clouds, Tensor):
        raise TypeError('pass a list of [N_i, C] point clouds, one per sample')
    if len(point_clouds) == 0:
        raise ValueError('empty batch of point clouds')
    channels = {p.shape[-1] for p in point_clouds}
    if len(channels) != 1:
        raise ValueError(f'all point clouds need the same channels, got {sorted(channels)}')
    indices, feats = [], []
    for b, points in enumerate(point_clouds):
        coords, f, _ = voxelize(points, grid_size)
        indices.append(torch.cat([coords.new_full((coords.shape[0], 1), b), coords], 1))
        feats.append(f)
    indices = torch.cat(indices).int().contiguous()  # row-major int32, as spconv requires
    extent = indices[:, 1:].max(0).values + 1
    m = max(int(shape_multiple), 1)
    shape = [max(m, -(-int(e) // m) * m) for e in extent.tolist()]
    return spconv.SparseConvTensor(torch.cat(feats), indices, shape, len(point_clouds))


@MODELS.register_module()
class SpikeSparseConv3d(nn.Module):
    """3D Spike Sparse Convolution: ``neuron -> spconv conv -> BatchNorm1d`` on active voxels.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        kernel_size (int): Defaults to 3.
        stride (int): 1 for a submanifold ``SubMConv3d`` (padding ``kernel_size // 2``; the
            active set is unchanged), > 1 for a downsampling ``SparseConv3d`` (no padding; E-3DSNN
            uses kernel 2, stride 2). Defaults to 1.
        inverse (bool): An ``SparseInverseConv3d`` that restores the active set of the
            downsampling conv with the same ``indice_key`` (U-Net decoders). Defaults to False.
        indice_key (str, optional): spconv rulebook key (layers with the same key and geometry
            share one rulebook). Defaults to None.
        neuron (dict, optional): Neuron before the conv; None feeds the conv real values (the
            first layer). Defaults to :data:`E3DSNN_NEURON`.
        norm (bool): Whether ``BatchNorm1d(eps=1e-3, momentum=0.01)`` follows. Defaults to True.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 inverse: bool = False, indice_key: Optional[str] = None,
                 neuron: Optional[dict] = E3DSNN_NEURON, norm: bool = True) -> None:
        super().__init__()
        spconv = require_spconv()
        if inverse and indice_key is None:
            raise ValueError('an inverse SpikeSparseConv3d needs the indice_key of the '
                             'downsampling conv it inverts')
        self.neuron = build_neuron(neuron)
        if inverse:
            self.conv = spconv.SparseInverseConv3d(in_channels, out_channels, kernel_size,
                                                   indice_key=indice_key, bias=False)
        elif stride == 1:
            if kernel_size % 2 != 1:
                raise ValueError(f'a submanifold conv needs an odd kernel, got {kernel_size}')
            self.conv = spconv.SubMConv3d(in_channels, out_channels, kernel_size,
                                          padding=kernel_size // 2, indice_key=indice_key,
                                          bias=False)
        else:
            self.conv = spconv.SparseConv3d(in_channels, out_channels, kernel_size, stride,
                                            indice_key=indice_key, bias=False)
        self.bn = nn.BatchNorm1d(out_channels, eps=1e-3, momentum=0.01) if norm else None

    def forward(self, x: 'spconv.SparseConvTensor') -> 'spconv.SparseConvTensor':
        if not isinstance(x, import_spconv().SparseConvTensor):
            raise TypeError(f'SpikeSparseConv3d expects an spconv SparseConvTensor, got '
                            f'{type(x).__name__}')
        spikes = self.neuron(x.features.unsqueeze(0)).squeeze(0)
        y = run_spconv(self.conv, x.replace_feature(spikes))
        if self.bn is not None:
            y = y.replace_feature(self.bn(y.features))
        return y


@MODELS.register_module()
class SpikeSparseBasicBlock3d(nn.Module):
    """E-3DSNN basic block: three submanifold spike convs with two membrane shortcuts::

        u = x + SSC(x)
        out = u + SSC(SSC(u))

    Args:
        channels (int): Channels.
        indice_key (str, optional): Shared rulebook key of the three convs. Defaults to None.
        neuron (dict): Defaults to :data:`E3DSNN_NEURON`.
    """

    def __init__(self, channels: int, indice_key: Optional[str] = None,
                 neuron: dict = E3DSNN_NEURON) -> None:
        super().__init__()
        self.conv1 = SpikeSparseConv3d(channels, channels, 3, indice_key=indice_key, neuron=neuron)
        self.conv2 = SpikeSparseConv3d(channels, channels, 3, indice_key=indice_key, neuron=neuron)
        self.conv3 = SpikeSparseConv3d(channels, channels, 3, indice_key=indice_key, neuron=neuron)

    def forward(self, x: 'spconv.SparseConvTensor') -> 'spconv.SparseConvTensor':
        u = self.conv1(x)
        u = u.replace_feature(u.features + x.features)
        out = self.conv3(self.conv2(u))
        return out.replace_feature(out.features + u.features)


@MODELS.register_module()
class SpikeVoxelCoding(nn.Module):
    """Spike Voxel Coding: voxelize point clouds, then a stem of three submanifold convs.

    ``points -> voxels (real features) -> SubM + BN -> neuron -> SubM + BN -> neuron -> SubM + BN``:
    the first conv takes the real-valued voxel features (xyz + normal, or xyz + intensity), every
    later conv takes spikes. The output features are membrane potentials.

    Args:
        in_channels (int): Point feature channels (xyz included).
        embed_channels (int): Stem channels.
        grid_size (float): Voxel size (0.01 for ModelNet40 in E-3DSNN). Defaults to 0.01.
        shape_multiple (int): See :func:`batch_voxelize`. Defaults to 16.
        neuron (dict): Defaults to :data:`E3DSNN_NEURON`.
        indice_key (str): Rulebook key of the stem. Defaults to ``'stem'``.
    """

    def __init__(self, in_channels: int, embed_channels: int, grid_size: float = 0.01,
                 shape_multiple: int = 16, neuron: dict = E3DSNN_NEURON,
                 indice_key: str = 'stem') -> None:
        super().__init__()
        self.in_channels = in_channels
        self.grid_size = grid_size
        self.shape_multiple = shape_multiple
        self.conv1 = SpikeSparseConv3d(in_channels, embed_channels, 3, indice_key=indice_key,
                                       neuron=None)
        self.conv2 = SpikeSparseConv3d(embed_channels, embed_channels, 3, indice_key=indice_key,
                                       neuron=neuron)
        self.conv3 = SpikeSparseConv3d(embed_channels, embed_channels, 3, indice_key=indice_key,
                                       neuron=neuron)

    def forward(self, points: Union[Sequence[Tensor], 'spconv.SparseConvTensor']
                ) -> 'spconv.SparseConvTensor':
        """Args:
            points (list[Tensor] | SparseConvTensor): ``[N_i, in_channels]`` clouds (xyz first),
                or already voxelized input.
        """
        if isinstance(points, import_spconv().SparseConvTensor):
            x = points
        else:
            for p in points:
                if p.dim() != 2 or p.shape[1] != self.in_channels:
                    raise ValueError(f'expected [N, {self.in_channels}] point clouds, got '
                                     f'{tuple(p.shape)}')
            x = batch_voxelize(points, self.grid_size, self.shape_multiple)
        return self.conv3(self.conv2(self.conv1(x)))
