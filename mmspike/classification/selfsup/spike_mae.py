"""Spike-masked autoencoder (E-SpikeFormer MAE pre-training) for mmpretrain.

Random patches of the image are masked on the ``patch_size`` (16) grid. The encoder is an
:class:`~mmspike.models.backbones.ESpikeFormer` whose CNN stages (and the downsampling conv that
feeds the Transformer) are converted to Spike Sparse Convolution
(:func:`convert_espikeformer_to_ssc`): masked positions stay exactly zero through every CNN layer,
so visible features and BN biases cannot leak into them. The Transformer stages then see all
tokens (masked ones enter as zeros). The visible tokens of the last stage go to a non-spiking
MAE decoder (mmpretrain's ``MAEPretrainDecoder``: mask tokens, fixed 2D sin-cos positions, ViT
blocks) and the loss is the MSE on per-patch-normalised pixels of the masked patches
(``MAEPretrainHead`` with ``norm_pix=True``).

The conversion keeps every parameter name, so ``SpikeMAE.backbone`` has exactly the state-dict
keys of a plain ESpikeFormer: :func:`mae_to_backbone_state_dict` strips the ``backbone.`` prefix
and fine-tuning loads it with :func:`load_state_dict_exact` (every key, or an error listing the
missing and unexpected ones).

Differences from the upstream code (``Model_Large/MAE_SDT.py``), all deliberate:

* the mask is passed explicitly (:class:`~mmspike.models.layers.ActiveSites`), not through a
  module-global ``_cur_active``;
* the decoder gets the visible tokens plus mask tokens in their original places (upstream feeds
  all encoder tokens through ``gather(ids_restore)``, which permutes their positions);
* the encoder output is normalised by a BatchNorm1d over the visible tokens (upstream: over all
  tokens), and a pooled visible token fills the decoder's class-token slot.
"""
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple, Union

import torch
from mmpretrain.models.selfsup import BaseSelfSupervisor
from mmpretrain.structures import DataSample
from torch import Tensor, nn

from mmspike.engine.hooks.pretrained_backbone_hook import load_state_dict_exact
from mmspike.registry import MODELS
from mmspike.models.layers.ssc import ActiveSites, convert_to_ssc

__all__ = ['random_patch_mask', 'patch_mask_to_pixels', 'convert_espikeformer_to_ssc',
           'MaskedSpikeModelling', 'SpikeMAE', 'mae_to_backbone_state_dict', 'load_state_dict_exact']


def random_patch_mask(batch: int, grid: Tuple[int, int], mask_ratio: float,
                      device: Union[str, torch.device] = 'cpu',
                      generator: Optional[torch.Generator] = None
                      ) -> Tuple[Tensor, Tensor, Tensor]:
    """Per-sample random patch masking (MAE): shuffle the patches, keep the first ones.

    Args:
        batch (int): Batch size B.
        grid (tuple[int, int]): Patch grid ``(h, w)``; L = h * w patches.
        mask_ratio (float): Fraction of masked patches, in [0, 1). ``int(L * (1 - ratio))``
            patches stay visible (at least one).

    Returns:
        tuple[Tensor, Tensor, Tensor]: ``mask`` ``[B, L]`` float (1 = masked, the convention of
        mmpretrain's MAE head), ``ids_keep`` ``[B, L_keep]`` (visible patch ids in shuffled order)
        and ``ids_restore`` ``[B, L]`` (inverse permutation, for the decoder).
    """
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f'mask_ratio must be in [0, 1), got {mask_ratio}')
    L = grid[0] * grid[1]
    keep = max(int(L * (1 - mask_ratio)), 1)
    noise = torch.rand(batch, L, device=device, generator=generator)
    ids_shuffle = noise.argsort(dim=1)
    ids_restore = ids_shuffle.argsort(dim=1)
    ids_keep = ids_shuffle[:, :keep]
    mask = torch.ones(batch, L, device=device)
    mask[:, :keep] = 0
    mask = mask.gather(1, ids_restore)
    return mask, ids_keep, ids_restore


def patch_mask_to_pixels(mask: Tensor, grid: Tuple[int, int], patch_size: int) -> Tensor:
    """``[B, L]`` patch mask (1 = masked) -> ``[B, H, W]`` bool map of *active* (visible) pixels."""
    active = (mask < 0.5).view(mask.shape[0], *grid)
    return active.repeat_interleave(patch_size, 1).repeat_interleave(patch_size, 2)


def convert_espikeformer_to_ssc(backbone: nn.Module, sites: Optional[ActiveSites] = None,
                                backend: str = 'dense') -> ActiveSites:
    """Convert the CNN part of an E-SpikeFormer (or any staged backbone with ``conv_stages``) to
    Spike Sparse Convolution, in place.

    Converted: every layer of ``stages[:conv_stages]`` and the first layer (the downsampling conv)
    of ``stages[conv_stages]``, so masked tokens reach the Transformer as exact zeros (as
    upstream); the Transformer blocks stay dense and see all tokens. Parameter names and tensors
    are unchanged (the state dict is the one of the plain backbone).

    Args:
        backbone (nn.Module): An ESpikeFormer-like backbone (``stages``, ``conv_stages``).
        sites (ActiveSites, optional): Mask holder to use; a new one by default.
        backend (str): ``'dense'`` or ``'spconv'``. Defaults to ``'dense'``.

    Returns:
        ActiveSites: run the backbone inside ``sites.use(mask)`` with ``mask`` the ``[B, H, W]``
        active pixels of the input.
    """
    stages = getattr(backbone, 'stages', None)
    conv_stages = getattr(backbone, 'conv_stages', None)
    if not isinstance(stages, nn.ModuleList) or not isinstance(conv_stages, int):
        raise TypeError(f'{type(backbone).__name__} has no `stages` ModuleList and `conv_stages` '
                        'count; SSC conversion needs an ESpikeFormer-like backbone')
    if conv_stages < 1:
        raise ValueError(f'{type(backbone).__name__} has no CNN stage to convert')
    sites = sites if sites is not None else ActiveSites()
    for i in range(conv_stages):
        convert_to_ssc(stages[i], sites, backend)
    if conv_stages < len(stages) and len(stages[conv_stages]) > 0:
        convert_to_ssc(stages[conv_stages][0], sites, backend)
    return sites


class MaskedSpikeModelling(BaseSelfSupervisor):
    """The masked-image-modelling step shared by mmspike's spiking pre-training algorithms.

    A random patch mask on the ``patch_size`` grid; the backbone's convolutional part runs as Spike
    Sparse Convolution inside ``self.active_sites.use(visible pixels)`` so masked patches stay
    exactly zero; the time-averaged visible tokens, normalised (BatchNorm1d), go to a non-spiking
    MAE decoder (a pooled visible token in its class-token slot); the loss is the head's (MSE on
    normalised pixels of the masked patches). Subclasses convert their backbone
    (:meth:`convert_backbone`), say its token width and stride and encode the visible tokens
    (:meth:`encode_visible`).

    Args:
        backbone (dict): The encoder config.
        neck (dict): ``MAEPretrainDecoder`` with ``embed_dim`` = the encoder width and
            ``num_patches`` = the patch count of the training crops.
        head (dict): ``MAEPretrainHead`` (``norm_pix=True``, L2 ``PixelReconstructionLoss``).
        mask_ratio (float): Fraction of masked patches, in [0, 1).
        patch_size (int): Masking grid. Defaults to 16.
        ssc_backend (str): ``'dense'`` or ``'spconv'``. Defaults to ``'dense'``.
        pretrained (str, optional): Defaults to None.
        data_preprocessor (dict, optional): Defaults to mmpretrain's ``SelfSupDataPreprocessor``.
        init_cfg (dict, optional): Defaults to None.
    """

    def __init__(self, backbone: dict, neck: dict, head: dict, mask_ratio: float,
                 patch_size: int = 16, ssc_backend: str = 'dense',
                 pretrained: Optional[str] = None, data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(backbone=backbone, neck=neck, head=head, pretrained=pretrained,
                         data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if not 0.0 <= mask_ratio < 1.0:
            raise ValueError(f'mask_ratio must be in [0, 1), got {mask_ratio}')
        self.mask_ratio = float(mask_ratio)
        self.patch_size = int(patch_size)
        self.active_sites = self.convert_backbone(ssc_backend)
        self.encoder_norm = nn.BatchNorm1d(self.token_channels())

    def convert_backbone(self, backend: str) -> ActiveSites:
        """Convert the backbone's convolutional part to SSC in place; return its sites."""
        raise NotImplementedError

    def token_channels(self) -> int:
        """Width of the encoder's tokens."""
        raise NotImplementedError

    def encode_visible(self, inputs: Tensor, mask: Tensor, ids_keep: Tensor) -> Tensor:
        """Encoder output ``[B, K, C]`` (mean over T) of the K visible tokens ``ids_keep``
        (``[B, K]``, in that order) for the patch ``mask`` (``[B, L]``, 1 = masked)."""
        raise NotImplementedError

    def _grid(self, inputs: Tensor) -> Tuple[int, int]:
        if inputs.dim() != 4:
            raise ValueError(f'{type(self).__name__} expects [B, C, H, W] images, got '
                             f'{tuple(inputs.shape)}')
        H, W = inputs.shape[-2:]
        p = self.patch_size
        if H % p or W % p:
            raise ValueError(f'image size {H}x{W} is not a multiple of the patch size {p}')
        return H // p, W // p

    def extract_feat(self, inputs: Tensor) -> Tuple[Tensor, ...]:
        """Backbone outputs with nothing masked (all sites active)."""
        B, _, H, W = inputs.shape
        self._grid(inputs)
        with self.active_sites.use(inputs.new_ones(B, H, W, dtype=torch.bool)):
            return self.backbone(inputs)

    def reconstruct(self, inputs: Tensor, mask: Tensor, ids_keep: Tensor,
                    ids_restore: Tensor) -> Tensor:
        """Decoder prediction ``[B, L, patch_size ** 2 * C]`` for a given masking."""
        visible = self.encode_visible(inputs, mask, ids_keep)
        B, K, C = visible.shape
        visible = self.encoder_norm(visible.reshape(B * K, C)).view(B, K, C)
        # The decoder expects a class token first; a pooled visible token takes its slot.
        latent = torch.cat([visible.mean(1, keepdim=True), visible], dim=1)
        return self.neck(latent, ids_restore)

    def loss(self, inputs: Union[Tensor, List[Tensor]], data_samples: List[DataSample],
             **kwargs) -> Dict[str, Tensor]:
        if isinstance(inputs, (list, tuple)):
            if len(inputs) != 1:
                raise ValueError(f'{type(self).__name__} takes one view per image, got '
                                 f'{len(inputs)}')
            inputs = inputs[0]
        grid = self._grid(inputs)
        mask, ids_keep, ids_restore = random_patch_mask(inputs.shape[0], grid, self.mask_ratio,
                                                        inputs.device)
        pred = self.reconstruct(inputs, mask, ids_keep, ids_restore)
        return dict(loss=self.head.loss(pred, inputs, mask))


@MODELS.register_module()
class SpikeMAE(MaskedSpikeModelling):
    """Spike-masked autoencoder: SSC E-SpikeFormer encoder + non-spiking MAE decoder.

    The whole encoder sees every token (masked ones exactly zero through the SSC stages); the
    visible tokens of its last output go to the decoder.

    Args:
        backbone (dict): The encoder, an ``mmspike.ESpikeFormer`` config whose last output has
            stride ``patch_size``. Its CNN stages are converted to SSC.
        neck (dict): The decoder, e.g. ``MAEPretrainDecoder`` with ``embed_dim`` = the encoder's
            last channels and ``num_patches`` = the patch count of the training crops.
        head (dict): ``MAEPretrainHead`` (``norm_pix=True``, L2 ``PixelReconstructionLoss``).
        mask_ratio (float): Fraction of masked patches. Defaults to 0.5 (the paper).
        **kwargs: ``patch_size``, ``ssc_backend``, ``pretrained``, ``data_preprocessor``,
            ``init_cfg`` of :class:`MaskedSpikeModelling`.
    """

    def __init__(self, backbone: dict, neck: dict, head: dict, mask_ratio: float = 0.5,
                 **kwargs) -> None:
        super().__init__(backbone, neck, head, mask_ratio=mask_ratio, **kwargs)
        out_strides = getattr(self.backbone, 'out_strides', None)
        if not out_strides or out_strides[-1] != self.patch_size:
            raise ValueError(f'the encoder\'s last output must have stride '
                             f'patch_size={self.patch_size} (one token per patch), got '
                             f'out_strides={out_strides}')

    def convert_backbone(self, backend: str) -> ActiveSites:
        return convert_espikeformer_to_ssc(self.backbone, backend=backend)

    def token_channels(self) -> int:
        return self.backbone.out_channels[-1]

    def encode(self, inputs: Tensor, mask: Tensor) -> Tensor:
        """Encoder tokens ``[B, L, C]`` (mean over T) for the patch ``mask`` (``[B, L]``, 1 =
        masked). Masked patches are exactly zero through the SSC stages."""
        grid = self._grid(inputs)
        active = patch_mask_to_pixels(mask, grid, self.patch_size)
        with self.active_sites.use(active):
            feat = self.backbone(inputs)[-1]  # [T, B, C, h, w]
        if tuple(feat.shape[-2:]) != grid:
            raise RuntimeError(f'encoder output {tuple(feat.shape[-2:])} does not match the patch '
                               f'grid {grid}')
        return feat.mean(0).flatten(2).transpose(1, 2)

    def encode_visible(self, inputs: Tensor, mask: Tensor, ids_keep: Tensor) -> Tensor:
        tokens = self.encode(inputs, mask)
        return tokens.gather(1, ids_keep.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))


def mae_to_backbone_state_dict(state_dict: Dict[str, Tensor],
                               prefix: str = 'backbone.') -> 'OrderedDict[str, Tensor]':
    """The encoder weights of a :class:`SpikeMAE` state dict, with ``prefix`` stripped.

    The result loads into a plain ``ESpikeFormer`` of the same arch by exact keys. Raises
    ``KeyError`` if no key starts with ``prefix``.
    """
    out = OrderedDict((k[len(prefix):], v) for k, v in state_dict.items() if k.startswith(prefix))
    if not out:
        sample = sorted(state_dict)[:5]
        raise KeyError(f'no key starts with {prefix!r}; is this a SpikeMAE checkpoint? '
                       f'first keys: {sample}')
    return out
