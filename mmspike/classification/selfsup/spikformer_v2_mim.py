"""Masked image modelling for Spikformer V2 (its self-supervised pre-training) in mmpretrain.

Spikformer V2 (Zhou et al. 2024) pre-trains its Spiking Convolutional Stem (SCS) + Spikformer
encoder "with masking and reconstruction style inspired by the mainstream self-supervised
Transformer" (MAE), then fine-tunes on ImageNet; the 172M 16-layer model reaches 81.10% at one
time step that way. No code was released; the paper text available here gives the idea but not
the recipe, so the details below are choices (marked *choice*).

One step, for images ``[B, 3, H, W]`` and a random patch mask on the ``patch_size`` (16) grid:

1. the SCS runs as Spike Sparse Convolution (every conv and BN of the four stem blocks, the 2x2/2
   patchify convs included): masked patches stay exactly zero and BN statistics come from visible
   sites only, so nothing of the visible patches leaks into masked ones;
2. the stem's stride-16 map is one token per patch; **only the visible tokens** go through the
   Spikformer encoder blocks (MAE-style). This is exact for Spikformer V2: its SSA and MLP are
   per-token 1x1 projections, BN and LIF neurons plus a position-free global attention, so a
   ``[T, B, C, 1, K]`` map of K visible tokens is a valid encoder input;
3. the time-averaged visible tokens are normalised (BatchNorm1d) and decoded by mmpretrain's
   non-spiking ``MAEPretrainDecoder`` (mask tokens, fixed 2D sin-cos positions, ViT blocks);
4. the loss is the MSE on per-patch-normalised pixels of the masked patches (``MAEPretrainHead``,
   ``norm_pix=True``).

Same as the spike-MAE (:class:`~mmspike.classification.selfsup.SpikeMAE`, E-SpikeFormer) and
reused from it: the patch masking (:func:`random_patch_mask`), the SSC conversion of the
convolutional part (:func:`~mmspike.models.layers.ssc.convert_to_ssc`), the decoder, the
normalised-pixel loss, the encoder norm and the pooled visible token in the decoder's class-token
slot, and the exact-key extraction of the encoder (:func:`mae_to_backbone_state_dict`; the
checkpoint carries ``encoder_norm.*`` and ``neck.mask_token``, so
``tools/model_converters/spike_mae2backbone.py`` converts it unchanged).

Different from the spike-MAE:

* the Transformer encoder sees **only the visible tokens** (the MAE design the Spikformer V2
  paper names) instead of all tokens with masked ones set to zero (E-SpikeFormer's SSC-MAE, whose
  pre-Transformer CNN stages determine the token grid); masked tokens therefore cannot reach the
  visible ones through attention, and the encoder costs ``1 - mask_ratio`` of a full pass;
* the whole stem is converted (four SCS blocks), not ``conv_stages`` plus one downsampling conv;
* LIF neurons (binary spikes) instead of integer ``MultiSpike`` ones; T=1 (*choice*: the
  paper's SSL model is evaluated at one time step);
* *choice*: ``mask_ratio`` 0.75 (MAE's) rather than the spike-MAE's 0.5.

The conversion keeps every parameter name: ``SpikformerV2MIM.backbone`` has exactly the state-dict
keys of a plain :class:`~mmspike.models.backbones.SpikformerV2`.
"""
from typing import Optional

from torch import Tensor

from mmspike.models.backbones import SpikformerV2
from mmspike.models.layers import to_time_sequence
from mmspike.models.layers.ssc import ActiveSites, convert_to_ssc
from mmspike.registry import MODELS
from .spike_mae import MaskedSpikeModelling, patch_mask_to_pixels

__all__ = ['SpikformerV2MIM', 'convert_scs_to_ssc']


def convert_scs_to_ssc(backbone: SpikformerV2, sites: Optional[ActiveSites] = None,
                       backend: str = 'dense') -> ActiveSites:
    """Convert the Spiking Convolutional Stem (``stages[:-1]``) of a Spikformer V2 to SSC, in
    place; the encoder blocks (``stages[-1]``) stay as they are. Parameter names and tensors are
    unchanged.

    Returns:
        ActiveSites: run the stem inside ``sites.use(mask)`` (``mask``: ``[B, H, W]`` visible
        pixels).
    """
    if not isinstance(backbone, SpikformerV2):
        raise TypeError(f'SpikformerV2MIM needs an mmspike.SpikformerV2 backbone, got '
                        f'{type(backbone).__name__}')
    sites = sites if sites is not None else ActiveSites()
    for stage in backbone.stages[:-1]:
        convert_to_ssc(stage, sites, backend)
    return sites


@MODELS.register_module()
class SpikformerV2MIM(MaskedSpikeModelling):
    """Spikformer V2 masked image modelling: SSC stem, visible-token encoder, MAE decoder.

    Args:
        backbone (dict): An ``mmspike.SpikformerV2`` config whose stem has stride ``patch_size``
            (the default ``stem_strides``). Its stem is converted to SSC.
        neck (dict): ``MAEPretrainDecoder`` with ``embed_dim`` = the encoder width and
            ``num_patches`` = the patch count of the training crops.
        head (dict): ``MAEPretrainHead`` (``norm_pix=True``, L2 ``PixelReconstructionLoss``).
        mask_ratio (float): Fraction of masked patches, in [0, 1). Defaults to 0.75.
        **kwargs: ``patch_size`` (16), ``ssc_backend`` (``'dense'``), ``pretrained``,
            ``data_preprocessor``, ``init_cfg`` of :class:`MaskedSpikeModelling`.
    """

    def __init__(self, backbone: dict, neck: dict, head: dict, mask_ratio: float = 0.75,
                 **kwargs) -> None:
        super().__init__(backbone, neck, head, mask_ratio=mask_ratio, **kwargs)
        stem_stride = self.backbone.stage_strides[-1]
        if stem_stride != self.patch_size:
            raise ValueError(f'the Spikformer V2 stem must have stride patch_size='
                             f'{self.patch_size} (one token per patch), got stride {stem_stride}')

    def convert_backbone(self, backend: str) -> ActiveSites:
        return convert_scs_to_ssc(self.backbone, backend=backend)

    def token_channels(self) -> int:
        return self.backbone.embed_dims

    def stem(self, inputs: Tensor, active: Tensor) -> Tensor:
        """The SSC stem's ``[T, B, C, h, w]`` token map for visible pixels ``active``
        (``[B, H, W]`` bool); masked tokens are exactly zero."""
        backbone = self.backbone
        x = to_time_sequence(inputs, backbone.T)
        with self.active_sites.use(active):
            for stage in backbone.stages[:-1]:
                x = stage(x)
        return x

    def encode_visible(self, inputs: Tensor, mask: Tensor, ids_keep: Tensor) -> Tensor:
        """Only the visible tokens go through the encoder blocks."""
        grid = self._grid(inputs)
        tokens = self.stem(inputs, patch_mask_to_pixels(mask, grid, self.patch_size))
        T, B, C = tokens.shape[:3]
        if tuple(tokens.shape[-2:]) != grid:
            raise RuntimeError(f'stem output {tuple(tokens.shape[-2:])} does not match the patch '
                               f'grid {grid}')
        index = ids_keep[None, :, None, :].expand(T, B, C, ids_keep.shape[1])
        visible = tokens.flatten(3).gather(3, index).unsqueeze(3)  # [T, B, C, 1, K]
        out = self.backbone.stages[-1](visible)
        return out.mean(0).squeeze(2).transpose(1, 2)
