"""Spikformer V2 backbones (Spiking Self-Attention + Spiking Convolutional Stem).

Zhou et al., "Spikformer V2: Join the High Accuracy Club on ImageNet with an SNN Ticket" (2024).
No code was released; this follows the paper's description, and the details it leaves open are
choices made here (marked *choice*):

* **Spiking Convolutional Stem (SCS)**: four blocks, each downsampling with a 2x2 stride-2 conv
  (+BN) and adding a convolutional block shaped like the MLP block (two 3x3 spiking convs
  ``C -> 4C -> C`` with a residual). Widths D/8, D/4, D/2, D as in Spikformer V1's patch
  splitting; the first conv sees the real-valued image. The hidden ratio 4 (``stem_mlp_ratio``)
  is the one with which the parameter counts equal the paper's (1000 classes): 8-512 51,545,064
  (51.55M, the 80.38% model) and 16-768 172,278,760 (the abstract's "172M 16-layer" model,
  81.10% at T=1 after self-supervised pre-training); with ratio 1 they would be 32.7M and 130.0M.
  Sources: the 172M and 16 layers are in the paper's abstract; 51.55M for the 80.38% model is
  the paper's ImageNet table as quoted by third-party leaderboards; the widths (512, 768) are
  inferred here from those counts (the paper text available to this project does not name
  them).
* ``stem_strides``: an SCS block with stride 1 replaces its 2x2/2 conv by a 3x3 stride-1 conv
  (*choice*, for 32x32 CIFAR images, where Spikformer V1 downsamples only twice: 8x8 tokens).
* **Encoder**: ``depth`` blocks ``x + SSA(x)``, ``x + MLP(x)`` at stride 16. SSA: spike Q, K, V
  from 1x1 conv + BN, ``Q K^T V * 0.125`` without softmax (evaluated in the cheaper order), a LIF
  with threshold 0.5, then a biased 1x1 conv + BN. MLP ratio 4.
* LIF neurons (tau 2), static images repeated over T (4 in the paper's headline 80.38%).
* *choice*: residuals are membrane shortcuts with the neuron at the start of each branch (as in
  all mmspike blocks), so every conv and matmul is fed by spikes; Spikformer V1 added spike
  tensors (SEW residuals) and fed their integer sums to the next layer.
* *choice*: head dimension 64 (``num_heads = D / 64``), which the fixed scale 0.125 implies;
  ``'4-384'`` (CIFAR) has 12 heads, as Spikformer V1's released CIFAR model.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

from torch import nn

from mmspike.registry import MODELS
from ..layers import SpikeConvBlock, SpikeConvBN, SpikeTransformerBlock
from ..layers.blocks import drop_path_rates
from ..neurons.presets import SPIKFORMER_ATTN_LIF, SPIKFORMER_LIF
from .base_backbone import BaseSpikeBackbone


@MODELS.register_module()
class SpikformerV2(BaseSpikeBackbone):
    """Spikformer V2 backbone: Spiking Convolutional Stem, then Spikformer encoder blocks.

    Stages 0-3 are the SCS blocks (strides 2, 4, 8, 16; widths D/8 ... D), stage 4 the encoder
    (stride 16, width D).

    Args:
        arch (str | dict): ``'8-384'``, ``'8-512'``, ``'8-768'``, ``'16-768'`` (the 172M model),
            ``'4-384'`` (CIFAR) (``depth-D``) or a dict with ``embed_dims`` and ``depth`` and
            optionally ``num_heads`` (default ``D // 64``), ``mlp_ratio`` (4) and
            ``stem_mlp_ratio`` (4). Defaults to ``'8-512'``.
        in_channels (int): Defaults to 3.
        T (int): Time steps of static images. Defaults to 4.
        neuron (dict): Defaults to a LIF with tau 2 and threshold 1.
        attn_neuron (dict, optional): Neuron on the attention output. Defaults to a LIF with
            threshold 0.5.
        stem_strides (Sequence[int]): Stride (2 or 1) of each of the four SCS blocks.
            Defaults to ``(2, 2, 2, 2)`` (stride 16, ImageNet); ``(1, 1, 2, 2)`` gives 8x8
            tokens on 32x32 CIFAR images.
        out_indices (Sequence[int]): Defaults to ``(-1, )`` (the encoder output).
        frozen_stages (int): Defaults to -1.
        drop_path_rate (float): Stochastic depth over the encoder blocks. Defaults to 0.
        init_cfg (dict | list[dict], optional): Defaults to None.
    """
    arch_settings: Dict[str, dict] = {
        '8-384': dict(embed_dims=384, depth=8),
        '8-512': dict(embed_dims=512, depth=8),
        '8-768': dict(embed_dims=768, depth=8),
        '16-768': dict(embed_dims=768, depth=16),
        '4-384': dict(embed_dims=384, depth=4, num_heads=12),
    }
    arch_keys = ('embed_dims', 'depth', 'num_heads', 'mlp_ratio', 'stem_mlp_ratio')

    def __init__(self,
                 arch: Union[str, dict] = '8-512',
                 in_channels: int = 3,
                 T: int = 4,
                 neuron: dict = SPIKFORMER_LIF,
                 attn_neuron: Optional[dict] = SPIKFORMER_ATTN_LIF,
                 stem_strides: Sequence[int] = (2, 2, 2, 2),
                 out_indices: Sequence[int] = (-1, ),
                 frozen_stages: int = -1,
                 drop_path_rate: float = 0.0,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(in_channels=in_channels, T=T, init_cfg=init_cfg)
        arch = self._parse_arch(arch)
        dims, depth = arch['embed_dims'], arch['depth']
        stem_strides = tuple(stem_strides)
        if len(stem_strides) != 4 or any(s not in (1, 2) for s in stem_strides):
            raise ValueError(f'stem_strides must be four strides of 1 or 2, got {stem_strides}')
        self.arch = arch
        self.embed_dims = dims

        stem_channels = [dims // 8, dims // 4, dims // 2, dims]
        self.stages = nn.ModuleList()
        prev = in_channels
        for i, (c, s) in enumerate(zip(stem_channels, stem_strides)):
            k, pad = (2, 0) if s == 2 else (3, 1)
            self.stages.append(nn.Sequential(
                # 2x2/2 downsampling (3x3/1 without); the first conv sees the real image.
                SpikeConvBN(prev, c, k, stride=s, padding=pad, neuron=None if i == 0 else neuron),
                SpikeConvBlock(c, mlp_ratio=arch['stem_mlp_ratio'], kernel_size=3, bias=False,
                               sepconv=None, neuron=neuron)))
            prev = c
        dpr = drop_path_rates(drop_path_rate, depth, 'ratio')
        attn_cfg = dict(projection='linear', value_ratio=1, scale=0.125, proj_bias=True)
        self.stages.append(nn.Sequential(*[
            SpikeTransformerBlock(dims, num_heads=arch['num_heads'], mlp_ratio=arch['mlp_ratio'],
                                  attn_cfg=attn_cfg, neuron=neuron, attn_neuron=attn_neuron,
                                  drop_path=dpr[j]) for j in range(depth)]))
        strides = [2**sum(s == 2 for s in stem_strides[:i + 1]) for i in range(4)]
        self._init_outputs(stem_channels + [dims], strides + strides[-1:], out_indices,
                           frozen_stages)

    def get_layer_depth(self, param_name: str, prefix: str = '') -> Tuple[int, int]:
        """Layer id for layer-wise lr decay (``LearningRateDecayOptimWrapperConstructor``), MAE's
        fine-tuning rule with the SCS as the patch embedding: the stem is layer 0, encoder block
        ``j`` is layer ``j + 1``, anything outside the backbone (the head) is last.

        Returns:
            tuple[int, int]: the layer id and the number of layers.
        """
        encoder = len(self.stages) - 1
        max_id = len(self.stages[encoder]) + 2
        if not param_name.startswith(prefix):
            return max_id - 1, max_id
        parts = param_name[len(prefix):].split('.')
        if parts[0] == 'stages' and int(parts[1]) == encoder:
            return int(parts[2]) + 1, max_id
        return 0, max_id

    def _parse_arch(self, arch: Union[str, dict]) -> dict:
        arch = self._check_arch(arch, ('embed_dims', 'depth'))
        arch = dict(dict(mlp_ratio=4, stem_mlp_ratio=4), **arch)
        dims = arch['embed_dims']
        if dims < 8 or dims % 8:
            raise ValueError(f'embed_dims must be a positive multiple of 8, got {dims}')
        arch.setdefault('num_heads', max(dims // 64, 1))
        if dims % arch['num_heads']:
            raise ValueError(f"num_heads={arch['num_heads']} must divide embed_dims={dims}")
        if arch['depth'] < 1:
            raise ValueError(f"depth must be >= 1, got {arch['depth']}")
        return arch
