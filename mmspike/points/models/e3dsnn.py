"""E-3DSNN point-cloud backbone (Spike Sparse Convolution on voxels).

Qiu et al., "Efficient 3D Recognition with Event-driven Spike Sparse Convolution" (E-3DSNN). The
ModelNet40 classifier of upstream (``SNN_3dv`` in bollossom/E-3DSNN, Pointcept configs
``cls-E3DSNN-v1m1-0-T`` / ``-S``) is here a stock mmpretrain ``ImageClassifier``::

    E3DSNN (backbone) -> SparseGlobalAveragePooling (neck) -> LinearClsHead (head)

Names here -> upstream:

====================================  ===============================================
mmspike                               upstream ``SNN_3dv``
====================================  ===============================================
``backbone.svc.conv{1,2,3}.conv/.bn``  ``stem.{0,1}``, ``stem.{3,4}``, ``stem.{6,7}``
``backbone.stages.i.0.conv / .bn``    ``enc.i.down.{1,2}`` (neuron, SparseConv3d k2 s2, BN)
``backbone.stages.i.{j+1}.conv1``     ``enc.i.blocks.j.block.{1,2}``
``backbone.stages.i.{j+1}.conv2 / 3`` ``enc.i.blocks.j.voxel_block.{1,2}`` / ``.{4,5}``
``head.fc`` (Linear)                  ``final`` (1x1 SubMConv3d with bias)
====================================  ===============================================

Upstream applies the 1x1 conv to every voxel and then averages the class scores over each
sample's voxels; a 1x1 submanifold conv is a per-voxel linear map and a mean commutes with it, so
averaging the features first (the neck) and then applying the same weights (the head) gives the
same logits with the same parameters (weight ``[classes, C]`` instead of ``[classes, 1, 1, 1, C]``;
:func:`convert_upstream_e3dsnn` maps checkpoints). spconv 2.3 runs a 1x1 submanifold conv as
``features @ weight.view(C, classes)``, i.e. it reads the ``[classes, 1, 1, 1, C]`` weight memory as
``[C, classes]``; upstream's released weights were trained through that reading, so the converter
maps the head weight the same way (checked against upstream's logits in
``tests/test_points/test_e3dsnn_upstream.py``).
"""
import copy
import re
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmspike.models.layers.ssc3d import (E3DSNN_NEURON, SpikeSparseBasicBlock3d,
                                         SpikeSparseConv3d, SpikeVoxelCoding)
from mmspike.registry import MODELS

__all__ = ['E3DSNN', 'SparseGlobalAveragePooling', 'convert_upstream_e3dsnn']


@MODELS.register_module()
class E3DSNN(BaseModule):
    """E-3DSNN feature extractor: the Spike Voxel Coding stem and four downsampling stages.

    ``voxels -> SVC stem (3 submanifold convs) -> 4 x [neuron -> SparseConv3d k2 s2 -> BN ->
    depth x basic block]``; the output features are membrane potentials (BN outputs).

    Args:
        arch (str | dict): ``'tiny'`` (E3DSNN-T, upstream ``cls-E3DSNN-v1m1-0-T``: embed 16,
            channels 16/32/64/128, one block per stage; 1,874,216 parameters with the 40-class
            head) or ``'small'`` (E3DSNN-S, ``cls-E3DSNN-v1m1-0-S``: embed 24, channels
            24/48/96/160; 3,271,144), or a dict with ``embed_channels``, ``channels`` and
            ``depths``. Defaults to ``'tiny'``.
        in_channels (int): Voxel features, xyz first (6 for xyz + normal). Defaults to 6.
        grid_size (float): Voxel size, used only when ``forward`` gets raw point clouds (the
            ``SpikeVoxelCoding`` transform voxelizes in the data pipeline). Defaults to 0.01.
        neuron (dict): Defaults to :data:`~mmspike.models.layers.ssc3d.E3DSNN_NEURON` with
            upstream's rounding ``floor(clamp(u, 0, 4) + 0.5)`` (``round_mode='floor_plus_half'``).
        init_cfg (dict, optional): Defaults to None (upstream's init: truncated normal, std
            0.02, for the submanifold convs; spconv's default for the downsampling convs).

    ``forward(x)`` takes an spconv ``SparseConvTensor`` of voxels (from
    :class:`~mmspike.points.models.PointsDataPreprocessor`) or a list of ``[N_i, in_channels]``
    point clouds, and returns a one-element tuple with the last stage's ``SparseConvTensor``.
    """
    arch_settings: Dict[str, dict] = {
        'tiny': dict(embed_channels=16, channels=(16, 32, 64, 128), depths=(1, 1, 1, 1)),
        'small': dict(embed_channels=24, channels=(24, 48, 96, 160), depths=(1, 1, 1, 1)),
    }

    def __init__(self, arch: Union[str, dict] = 'tiny', in_channels: int = 6,
                 grid_size: float = 0.01,
                 neuron: dict = dict(E3DSNN_NEURON, round_mode='floor_plus_half'),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if isinstance(arch, str):
            if arch not in self.arch_settings:
                raise ValueError(f'unknown arch {arch!r}; choose from {sorted(self.arch_settings)} '
                                 'or pass a dict')
            arch = self.arch_settings[arch]
        missing = {'embed_channels', 'channels', 'depths'} - set(arch)
        if missing:
            raise ValueError(f'arch dict lacks {sorted(missing)}')
        channels, depths = tuple(arch['channels']), tuple(arch['depths'])
        if len(channels) != len(depths) or not channels:
            raise ValueError(f'arch channels {channels} and depths {depths} need one entry '
                             'per stage')
        if in_channels < 3:
            raise ValueError(f'in_channels must be >= 3 (xyz first), got {in_channels}')
        self.arch = copy.deepcopy(arch)
        self.in_channels = in_channels
        self.out_channels = channels[-1]
        embed = arch['embed_channels']
        # Each stage halves the grid: keep the voxel grid a multiple of 2 ** stages.
        self.svc = SpikeVoxelCoding(in_channels, embed, grid_size,
                                    shape_multiple=2**len(channels), neuron=neuron)
        self.stages = nn.ModuleList()
        prev = embed
        for i, (c, d) in enumerate(zip(channels, depths)):
            layers: List[nn.Module] = [
                SpikeSparseConv3d(prev, c, 2, stride=2, indice_key=f'down{i}', neuron=neuron)]
            layers += [SpikeSparseBasicBlock3d(c, indice_key=f'subm{i + 1}', neuron=neuron)
                       for _ in range(d)]
            self.stages.append(nn.Sequential(*layers))
            prev = c
        if init_cfg is None:
            for m in self.modules():
                if isinstance(m, SpikeSparseConv3d) and m.conv.subm:
                    nn.init.trunc_normal_(m.conv.weight, std=0.02)

    def forward(self, x) -> tuple:
        x = self.svc(x)
        for stage in self.stages:
            x = stage(x)
        return (x, )


@MODELS.register_module()
class SparseGlobalAveragePooling(nn.Module):
    """Mean of each sample's voxel features: sparse ``[M, C]`` -> dense ``[B, C]``.

    Takes a tuple of spconv ``SparseConvTensor`` (batch index in ``indices[:, 0]``) and returns a
    tuple of ``[batch_size, C]`` tensors, so stock mmpretrain heads follow. A sample without any
    voxel is an error (its mean is undefined).
    """

    def forward(self, inputs):
        if not isinstance(inputs, (tuple, list)):
            inputs = (inputs, )
        outs = []
        for x in inputs:
            if not all(hasattr(x, a) for a in ('features', 'indices', 'batch_size')):
                raise TypeError('SparseGlobalAveragePooling expects spconv SparseConvTensors, '
                                f'got {type(x).__name__}')
            batch = x.indices[:, 0].long()
            counts = torch.bincount(batch, minlength=x.batch_size)
            if bool((counts == 0).any()):
                empty = torch.nonzero(counts == 0).flatten().tolist()
                raise ValueError(f'samples {empty} of the batch have no active voxel')
            feats = x.features
            sums = feats.new_zeros(x.batch_size, feats.shape[1]).index_add_(0, batch, feats)
            outs.append(sums / counts[:, None].to(feats.dtype))
        return tuple(outs)


_UPSTREAM_RULES: Sequence[Tuple[str, str]] = (
    (r'^stem\.([0-9])\.(.+)$', 'stem'),
    (r'^enc\.(\d+)\.down\.([12])\.(.+)$', 'down'),
    (r'^enc\.(\d+)\.blocks\.(\d+)\.block\.([12])\.(.+)$', 'block'),
    (r'^enc\.(\d+)\.blocks\.(\d+)\.voxel_block\.([1245])\.(.+)$', 'voxel_block'),
    (r'^final\.(weight|bias)$', 'final'),
)
_STEM = {'0': 'conv1.conv', '1': 'conv1.bn', '3': 'conv2.conv', '4': 'conv2.bn',
         '6': 'conv3.conv', '7': 'conv3.bn'}
_VOXEL_BLOCK = {'1': 'conv2.conv', '2': 'conv2.bn', '4': 'conv3.conv', '5': 'conv3.bn'}


def convert_upstream_e3dsnn(state_dict: Dict[str, Tensor], backbone_prefix: str = 'backbone.',
                            head_prefix: str = 'head.fc.') -> Dict[str, Tensor]:
    """Map an upstream ``SNN_3dv`` state dict (``stem.*``, ``enc.*``, ``final.*``; an optional
    ``module.`` / ``backbone.`` prefix is dropped) to this ``ImageClassifier``'s keys.

    Every key must map: an unknown key is an error, not silently dropped.
    """
    out = {}
    for key, value in state_dict.items():
        k = re.sub(r'^(module\.)?(backbone\.)?', '', key)
        for pattern, kind in _UPSTREAM_RULES:
            m = re.match(pattern, k)
            if m is None:
                continue
            if kind == 'stem':
                if m.group(1) not in _STEM:
                    raise KeyError(f'upstream E-3DSNN key {key!r} has no mmspike counterpart')
                new = f'{backbone_prefix}svc.{_STEM[m.group(1)]}.{m.group(2)}'
            elif kind == 'down':
                part = 'conv' if m.group(2) == '1' else 'bn'
                new = f'{backbone_prefix}stages.{m.group(1)}.0.{part}.{m.group(3)}'
            elif kind == 'block':
                part = 'conv1.conv' if m.group(3) == '1' else 'conv1.bn'
                new = (f'{backbone_prefix}stages.{m.group(1)}.{int(m.group(2)) + 1}.{part}.'
                       f'{m.group(4)}')
            elif kind == 'voxel_block':
                new = (f'{backbone_prefix}stages.{m.group(1)}.{int(m.group(2)) + 1}.'
                       f'{_VOXEL_BLOCK[m.group(3)]}.{m.group(4)}')
            else:  # final 1x1 SubMConv3d -> Linear [classes, C]
                new = f'{head_prefix}{m.group(1)}'
                if m.group(1) == 'weight':
                    # spconv 2.3's 1x1 shortcut computes features @ weight.view(C, classes):
                    # the [classes, 1, 1, 1, C] memory is read as [C, classes]; keep that map.
                    value = value.contiguous().view(value.shape[-1], value.shape[0]).t()
            out[new] = value
            break
        else:
            raise KeyError(f'upstream E-3DSNN key {key!r} has no mmspike counterpart')
    return out
