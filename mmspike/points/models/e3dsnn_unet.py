"""E-3DSNN segmentation backbone: the E3DSNN encoder and a spiking sparse U-Net decoder.

Upstream's SemanticKITTI network is ``E_3DSNN_seg`` (bollossom/E-3DSNN@dbe5d17,
``classify_seg/pointcept/models/E_3DSNN/E_3DSNN_v1m1_base.py``, config
``semantic_kitti/semseg-3dsnn-v1m1-0-base``). Here it is split the mmdet3d way::

    E3DSNNUNet (backbone: voxel features -> per-voxel features) -> MinkUNetHead (Linear)

Encoder = :class:`~mmspike.points.models.E3DSNN` (SVC stem + four ``neuron -> SparseConv3d k2 s2
-> BN -> blocks`` stages). Decoder stage ``i`` (deepest first)::

    up   = BN(SparseInverseConv3d_k2(neuron(x)))             back onto stage i's input voxels
    out  = up + BN(Linear(neuron(BN(Linear(neuron([up, skip]))))))

and the head is upstream's ``final`` 1x1 submanifold conv with bias (a per-voxel linear map).
Upstream's ``groups``, ``point_grid_size`` and ``enc_num_ref`` arguments do not change the
computation (the clusters its down blocks compute are never used) and are not arguments here.
"""
import re
from typing import Dict, Optional, Union

import torch
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmspike.models.layers.ssc3d import E3DSNN_NEURON, SpikeSparseConv3d
from mmspike.models.neurons.builder import build_neuron
from mmspike.registry import MODELS

from .data_preprocessor import sparse_batch
from .e3dsnn import E3DSNN, convert_upstream_e3dsnn

__all__ = ['E3DSNNUNet', 'SpikeSkipFusion', 'convert_upstream_e3dsnn_seg']


class SpikeSkipFusion(nn.Module):
    """Fuse decoder and skip features point-wise with two spiking linear layers:
    ``neuron -> Linear -> BN -> neuron -> Linear -> BN`` on ``[up, skip]``, added to ``up``.

    Args:
        channels (int): Decoder channels (of ``up`` and the output).
        skip_channels (int): Channels of the skip features.
        neuron (dict): Defaults to :data:`~mmspike.models.layers.ssc3d.E3DSNN_NEURON`.
    """

    def __init__(self, channels: int, skip_channels: int, neuron: dict = E3DSNN_NEURON) -> None:
        super().__init__()
        self.neuron1 = build_neuron(neuron)
        self.fc1 = nn.Linear(channels + skip_channels, channels)
        self.bn1 = nn.BatchNorm1d(channels, eps=1e-3, momentum=0.01)
        self.neuron2 = build_neuron(neuron)
        self.fc2 = nn.Linear(channels, channels)
        self.bn2 = nn.BatchNorm1d(channels, eps=1e-3, momentum=0.01)

    def forward(self, up: Tensor, skip: Tensor) -> Tensor:
        if up.shape[0] != skip.shape[0]:
            raise ValueError(f'decoder and skip features must be on the same voxels, got '
                             f'{up.shape[0]} and {skip.shape[0]} rows')
        x = torch.cat([up, skip], 1)
        x = self.bn1(self.fc1(self.neuron1(x.unsqueeze(0)).squeeze(0)))
        x = self.bn2(self.fc2(self.neuron2(x.unsqueeze(0)).squeeze(0)))
        return up + x


@MODELS.register_module()
class E3DSNNUNet(BaseModule):
    """E-3DSNN U-Net for point-wise (voxel-wise) segmentation.

    Args:
        arch (str | dict): ``'semantickitti'`` (upstream ``semseg-3dsnn-v1m1-0-base``: embed 64,
            encoder 64/128/128/256 with two blocks per stage, decoder 256 x 4; 20,049,683
            parameters with the 19-class head, counted on upstream's code) or a dict with
            ``embed_channels``, ``channels``, ``depths`` and ``decoder_channels``.
            Defaults to ``'semantickitti'``.
        in_channels (int): Voxel features, xyz first (4: xyz + LiDAR intensity). Defaults to 4.
        shape_multiple (int): The sparse grid is padded to a multiple of this (``2 ** stages``).
            Defaults to 16.
        neuron (dict): Defaults to upstream's ``floor(clamp(u, 0, 4) + 0.5)`` multi-spike.
        init_cfg (dict, optional): Defaults to None (upstream's init: truncated normal, std 0.02,
            for the submanifold convs and the linear layers, zero biases).

    ``forward(voxels, coors)`` takes mmdet3d's voxel dict entries (``[M, in_channels]`` features,
    ``[M, 4]`` int coordinates, batch index first) and returns ``[M, decoder_channels[0]]`` features
    (membrane potentials) of the same voxels, in the same order.
    """
    arch_settings: Dict[str, dict] = {
        'semantickitti': dict(embed_channels=64, channels=(64, 128, 128, 256), depths=(2, 2, 2, 2),
                              decoder_channels=(256, 256, 256, 256)),
    }

    def __init__(self, arch: Union[str, dict] = 'semantickitti', in_channels: int = 4,
                 shape_multiple: int = 16,
                 neuron: dict = dict(E3DSNN_NEURON, round_mode='floor_plus_half'),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if isinstance(arch, str):
            if arch not in self.arch_settings:
                raise ValueError(f'unknown arch {arch!r}; choose from {sorted(self.arch_settings)} '
                                 'or pass a dict')
            arch = self.arch_settings[arch]
        missing = {'embed_channels', 'channels', 'depths', 'decoder_channels'} - set(arch)
        if missing:
            raise ValueError(f'arch dict lacks {sorted(missing)}')
        channels = tuple(arch['channels'])
        dec = tuple(arch['decoder_channels'])
        if len(dec) != len(channels):
            raise ValueError(f'arch decoder_channels {dec} need one entry per encoder stage '
                             f'{channels}')
        if shape_multiple % 2**len(channels):
            raise ValueError(f'shape_multiple {shape_multiple} must be a multiple of 2 ** stages '
                             f'= {2**len(channels)}')
        self.in_channels = in_channels
        self.shape_multiple = shape_multiple
        self.out_channels = dec[0]
        self.encoder = E3DSNN(
            dict(embed_channels=arch['embed_channels'], channels=channels,
                 depths=tuple(arch['depths'])), in_channels=in_channels, neuron=neuron,
            init_cfg=init_cfg)
        skips = (arch['embed_channels'], ) + channels[:-1]
        self.up = nn.ModuleList()
        self.fuse = nn.ModuleList()
        for i in range(len(channels)):
            # stage i's decoder inverts stage i's downsampling conv (rulebook 'down{i}')
            below = channels[-1] if i == len(channels) - 1 else dec[i + 1]
            self.up.append(SpikeSparseConv3d(below, dec[i], 2, inverse=True,
                                             indice_key=f'down{i}', neuron=neuron))
            self.fuse.append(SpikeSkipFusion(dec[i], skips[i], neuron=neuron))
        if init_cfg is None:
            for m in self.fuse.modules():
                if isinstance(m, nn.Linear):
                    nn.init.trunc_normal_(m.weight, std=0.02)
                    nn.init.zeros_(m.bias)

    def forward(self, voxels: Tensor, coors: Tensor) -> Tensor:
        if coors.dim() != 2 or coors.shape[1] != 4 or voxels.shape[0] != coors.shape[0]:
            raise ValueError(f'expected [M, C] voxel features and [M, 4] (batch, x, y, z) '
                             f'coordinates, got {tuple(voxels.shape)} and {tuple(coors.shape)}')
        if voxels.shape[1] != self.in_channels:
            raise ValueError(f'expected {self.in_channels} voxel feature channels, got '
                             f'{voxels.shape[1]}')
        batch = coors[:, 0].long()
        num = int(batch.max()) + 1
        per_sample = [torch.nonzero(batch == b).flatten() for b in range(num)]
        x = sparse_batch([coors[i, 1:] for i in per_sample], [voxels[i] for i in per_sample],
                         self.shape_multiple)
        x = self.encoder.svc(x)
        skips = [x]
        for stage in self.encoder.stages:
            x = stage(x)
            skips.append(x)
        x = skips.pop()
        for i in reversed(range(len(self.up))):
            skip = skips.pop()
            x = self.up[i](x)
            x = x.replace_feature(self.fuse[i](x.features, skip.features))
        # sparse_batch groups the voxels by sample; map back to the input order
        order = torch.cat(per_sample)
        out = torch.empty_like(x.features)
        out[order] = x.features
        return out


_FUSE = {'1': 'fc1', '2': 'bn1', '4': 'fc2', '5': 'bn2'}


def convert_upstream_e3dsnn_seg(state_dict: Dict[str, Tensor], backbone_prefix: str = 'backbone.',
                                head_prefix: str = 'decode_head.conv_seg.'
                                ) -> Dict[str, Tensor]:
    """Map an upstream ``E_3DSNN_seg`` state dict (``stem.*``, ``enc.*``, ``dec.*``, ``final.*``;
    an optional ``module.`` / ``backbone.`` prefix is dropped) to the keys of mmdet3d's
    ``MinkUNet`` with an :class:`E3DSNNUNet` backbone and a ``MinkUNetHead``.

    ``dec.i.up.{1,2}`` -> ``up.i.{conv,bn}``, ``dec.i.fuse.{1,2,4,5}`` -> ``fuse.i.{fc1,bn1,fc2,
    bn2}``; the stem, encoder and ``final`` keys as :func:`convert_upstream_e3dsnn` maps them (the
    encoder under ``encoder.``). Every key must map: an unknown key is an error.
    """
    out, rest = {}, {}
    for key, value in state_dict.items():
        k = re.sub(r'^(module\.)?(backbone\.)?', '', key)
        m = re.match(r'^dec\.(\d+)\.(up|fuse)\.(\d+)\.(.+)$', k)
        if m is None:
            rest[k] = value
            continue
        i, part, idx, name = m.groups()
        if part == 'up' and idx in ('1', '2'):
            out[f'{backbone_prefix}up.{i}.{"conv" if idx == "1" else "bn"}.{name}'] = value
        elif part == 'fuse' and idx in _FUSE:
            out[f'{backbone_prefix}fuse.{i}.{_FUSE[idx]}.{name}'] = value
        else:
            raise KeyError(f'upstream E-3DSNN key {key!r} has no mmspike counterpart')
    out.update(convert_upstream_e3dsnn(rest, backbone_prefix=backbone_prefix + 'encoder.',
                                       head_prefix=head_prefix))
    return out
