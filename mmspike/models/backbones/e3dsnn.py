"""E-3DSNN point-cloud classifier (Spike Sparse Convolution on voxels).

Qiu et al., "Efficient 3D Recognition with Event-driven Spike Sparse Convolution" (E-3DSNN). Layout
of the ModelNet40 classifier (upstream ``SNN_3dv``; names here -> upstream):

==============================  ===================================================
mmspike ``E3DSNN``              upstream ``SNN_3dv``
==============================  ===================================================
``svc.conv{1,2,3}.conv / .bn``  ``stem.{0,1}``, ``stem.{3,4}``, ``stem.{6,7}``
``stages.i.0.conv / .bn``       ``enc.i.down.{1,2}`` (neuron, SparseConv3d k2 s2, BN)
``stages.i.{j+1}.conv1``        ``enc.i.blocks.j.block.{1,2}``
``stages.i.{j+1}.conv2 / 3``    ``enc.i.blocks.j.voxel_block.{1,2}`` / ``.{4,5}``
``head`` (Linear)               ``final`` (1x1 SubMConv3d with bias)
==============================  ===================================================

The per-voxel class scores are averaged over each sample's voxels (upstream: a scatter mean).
A 1x1 submanifold conv is a per-voxel linear layer, so the head is an ``nn.Linear`` (same
parameter count; weight ``[classes, C]``).
"""
import copy
from typing import Dict, List, Optional, Sequence, Union

import torch
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmspike.registry import MODELS
from ..layers.ssc3d import (E3DSNN_NEURON, SpikeSparseBasicBlock3d, SpikeSparseConv3d,
                            SpikeVoxelCoding)


@MODELS.register_module()
class E3DSNN(BaseModule):
    """E-3DSNN classifier: Spike Voxel Coding, four downsampling stages, a linear head.

    ``points -> SVC stem -> 4 x [neuron -> SparseConv3d k2 s2 -> BN -> depth x basic block]
    -> Linear per voxel -> mean over each sample's voxels -> logits``.

    Args:
        arch (str | dict): ``'tiny'`` (1,874,216 parameters with 40 classes: embed 16, channels
            16/32/64/128, one block per stage) or ``'small'`` (3.27M: embed 24, channels
            24/48/96/160), or a dict with ``embed_channels``, ``channels`` and ``depths``.
            Defaults to ``'tiny'``.
        in_channels (int): Point features, xyz first (6 for xyz + normal). Defaults to 6.
        num_classes (int): Defaults to 40 (ModelNet40).
        grid_size (float): Voxel size. Defaults to 0.01.
        neuron (dict): Defaults to :data:`~mmspike.models.layers.ssc3d.E3DSNN_NEURON`.
        init_cfg (dict, optional): Defaults to None.

    ``forward(points)`` takes a list of ``[N_i, in_channels]`` clouds (or an spconv
    ``SparseConvTensor`` of voxels) and returns logits ``[B, num_classes]``.
    """
    arch_settings: Dict[str, dict] = {
        'tiny': dict(embed_channels=16, channels=(16, 32, 64, 128), depths=(1, 1, 1, 1)),
        'small': dict(embed_channels=24, channels=(24, 48, 96, 160), depths=(1, 1, 1, 1)),
    }

    def __init__(self, arch: Union[str, dict] = 'tiny', in_channels: int = 6,
                 num_classes: int = 40, grid_size: float = 0.01,
                 neuron: dict = E3DSNN_NEURON, init_cfg: Optional[dict] = None) -> None:
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
        if num_classes < 1:
            raise ValueError(f'num_classes must be >= 1, got {num_classes}')
        self.arch = copy.deepcopy(arch)
        self.num_classes = num_classes
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
        self.head = nn.Linear(prev, num_classes)
        # Upstream init: truncated normal (std 0.02) for the submanifold convs and the head.
        for m in self.modules():
            if isinstance(m, SpikeSparseConv3d) and m.conv.subm:
                nn.init.trunc_normal_(m.conv.weight, std=0.02)
        nn.init.trunc_normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)


    def forward(self, points: Union[Sequence[Tensor], object]) -> Tensor:
        x = self.svc(points)
        for stage in self.stages:
            x = stage(x)
        scores = self.head(x.features)  # [M, classes] per voxel
        batch = x.indices[:, 0].long()
        counts = torch.bincount(batch, minlength=x.batch_size).clamp(min=1).to(scores.dtype)
        sums = scores.new_zeros(x.batch_size, self.num_classes).index_add_(0, batch, scores)
        return sums / counts[:, None]
