"""Meta-SpikeFormer (Spike-Driven Transformer V2) backbones.

Yao et al., "Spike-driven Transformer V2: Meta Spiking Neural Network Architecture Inspiring the
Design of Next-generation Neuromorphic Chips" (ICLR 2024). E-SpikeFormer keeps its macro design
(stride-4 stem, 1+1 and 2 CNN blocks, 6 and 2 Transformer blocks, stage 4 at stride 1), so this is
:class:`~mmspike.models.backbones.ESpikeFormer` with other block settings:

* CNN blocks: SepConv (k7) whose depthwise conv has no BN and no neuron before the last pointwise
  conv, then a 3x3 channel MLP (ratio 4, no biases);
* Transformer blocks: spike-driven self-attention with RepConv Q/K/V/out projections
  (``1x1 -> BN (border-padded) -> DW 3x3 -> 1x1 -> BN``, then BN), V as wide as Q, scale 0.125,
  ``Q (K^T V)``; no SepConv mixer;
* binary LIF neurons (tau 2, threshold 1; 0.5 on the attention output), T time steps.

Submodule names vs. upstream ``classification/models.py`` follow the table in
:mod:`mmspike.models.backbones.e_spikeformer`; in addition the CNN block's ``Conv.pwconv1 / bn1 /
dwconv / pwconv2 / bn2`` are ``sepconv.pwconv1.conv / pwconv1.bn / dwconv.conv / pwconv2.conv /
pwconv2.bn``, and a RepConv ``body.0 / body.1.bn / body.2.0 / body.2.1 / body.2.2`` is
``conv1 / bn1 / dwconv / conv2 / bn2``.
"""
from typing import Dict, List, Optional, Sequence, Union

from mmspike.registry import MODELS
from ..neurons.presets import SPIKFORMER_ATTN_LIF, SPIKFORMER_LIF
from .e_spikeformer import ESpikeFormer, _arch

_META_FAMILY = dict(
    conv_stages=2,
    conv_block=dict(mlp_ratio=4, bias=False, sepconv=dict(kernel_size=7, spike_dwconv=False)),
    transformer_block=dict(
        num_heads=8, mlp_ratio=4, sepconv_kernel=None, pre_mixer=False,
        attn_cfg=dict(projection='repconv', value_ratio=1, scale=0.125)),
    layer_scale_init_value=0.0)


@MODELS.register_module()
class MetaSpikeFormer(ESpikeFormer):
    """Meta-SpikeFormer backbone (Spike-Driven Transformer V2).

    Variants (parameters with a 1000-class linear head): ``'15m'`` (channels 64/128/256/360),
    ``'31m'`` (96/192/384/480), ``'55m'`` (128/256/512/640); strides 4/8/16/16.

    Args:
        arch (str | dict): A key of :attr:`arch_settings` or an arch dict as for
            :class:`ESpikeFormer` (left-out keys take Meta-SpikeFormer's values).
            Defaults to ``'55m'``.
        in_channels (int): Defaults to 3.
        T (int): Time steps of static images (1 or 4 in the paper). Defaults to 1.
        neuron (dict): Defaults to a LIF with tau 2 and threshold 1.
        out_indices (Sequence[int]): Defaults to ``(-1, )``.
        frozen_stages (int): Defaults to -1.
        drop_path_rate (float): Defaults to 0.
        layer_scale_init_value (float, optional): Defaults to None (no layer scale).
        attn_neuron (dict, optional): Neuron on the attention output. Defaults to a LIF with
            threshold 0.5.
        init_cfg (dict | list[dict], optional): Defaults to None.
    """
    arch_settings: Dict[str, dict] = {
        '15m': _arch(_META_FAMILY, (64, 128, 256, 360), (1, 2, 6, 2), (4, 2, 2, 1)),
        '31m': _arch(_META_FAMILY, (96, 192, 384, 480), (1, 2, 6, 2), (4, 2, 2, 1)),
        '55m': _arch(_META_FAMILY, (128, 256, 512, 640), (1, 2, 6, 2), (4, 2, 2, 1)),
    }
    default_arch = _META_FAMILY

    def __init__(self,
                 arch: Union[str, dict] = '55m',
                 in_channels: int = 3,
                 T: int = 1,
                 neuron: dict = SPIKFORMER_LIF,
                 out_indices: Sequence[int] = (-1, ),
                 frozen_stages: int = -1,
                 drop_path_rate: float = 0.0,
                 layer_scale_init_value: Optional[float] = None,
                 attn_neuron: Optional[dict] = SPIKFORMER_ATTN_LIF,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(arch=arch, in_channels=in_channels, T=T, neuron=neuron,
                         out_indices=out_indices, frozen_stages=frozen_stages,
                         drop_path_rate=drop_path_rate,
                         layer_scale_init_value=layer_scale_init_value,
                         attn_neuron=attn_neuron, init_cfg=init_cfg)
