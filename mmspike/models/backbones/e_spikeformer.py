"""E-SpikeFormer (Spike-Driven Transformer V3) backbones.

Yao et al., "Scaling Spike-driven Transformer with Efficient Spike Firing Approximation Training".
The base family (2M-19M) and the large family (83M, 173M) share one macro design: a stride-4 stem,
stages of spiking CNN blocks, then stages of spiking Transformer blocks; only the block internals
and the stage list differ, so both are arch settings of :class:`ESpikeFormer`.

Submodule names vs. the upstream code (``Model_Base/models.py``, ``Model_Large/spikformer.py``),
for checkpoint converters. The upstream token layers' ``Conv1d``/``BatchNorm1d`` are
``Conv2d``/``BatchNorm2d`` here (conv weights ``[O, I, 1] -> [O, I, 1, 1]``):

==========================================  ==================================================
upstream                                    mmspike ``ESpikeFormer``
==========================================  ==================================================
``downsample1_1.encode_conv / encode_bn``   ``stages.0.0.conv / .bn``  (stem, no neuron)
``ConvBlock1_1.0``                          ``stages.0.1``
``downsample1_2``                           ``stages.0.2``
``ConvBlock1_2.0``                          ``stages.0.3``
``downsample2``, ``ConvBlock2_1.0``,        ``stages.1.0``, ``stages.1.1``, ``stages.1.2``
``ConvBlock2_2.0``
``downsample3``, ``block3.{j}``             ``stages.2.0``, ``stages.2.{j+1}``
``downsample4``, ``block4.{j}`` (base)      ``stages.3.0``, ``stages.3.{j+1}``
*CNN block* ``Conv.pwconv1.0 / .1``         ``sepconv.pwconv1.conv / .bn`` (also dwconv, pwconv2)
``conv1, bn1, conv2, bn2`` (base)           ``mlp.fc1.conv, mlp.fc1.bn, mlp.fc2.conv, mlp.fc2.bn``
``conv1.0.0 / .1`` (large)                  ``mlp.fc1.conv / .bn`` (``conv2`` -> ``mlp.fc2``)
*Transformer block* ``conv.*`` (base)       ``sepconv.*``
``rep_conv.conv1.0 / .1, conv2.0 / .1``     ``pre_mixer.1.module.conv1 / bn1, conv2 / bn2`` (83M)
``attn.{q,k,v}_conv.0 / .1`` (base)         ``attn.{q,k,v}_conv.0 / .1``
``attn.{q,k,v}_conv.0.conv1.0 / .1`` (lg.)  ``attn.{q,k,v}_conv.0.conv1 / .bn1`` (``conv2``: same)
``attn.{q,k,v}_conv.1`` (large)             ``attn.{q,k,v}_conv.1``
``attn.proj_conv.*``                        ``attn.proj_conv.*`` (same pattern as q_conv)
``mlp.fc1_conv / fc1_bn / fc2_conv / ...``  ``mlp.fc1.conv / fc1.bn / fc2.conv / fc2.bn``
``layer_scale1 / layer_scale2``             ``layer_scale1 / layer_scale2``
``head`` / ``head_kd``                      ``head.fc`` / ``head.fc_kd`` (classifier head)
==========================================  ==================================================

(The large family's ``conv{i}`` is ``Sequential(SeqToANNContainer(conv, bn))``; the spikingjelly
versions upstream pins (0.0.0.0.12 / 0.0.0.0.14) make ``SeqToANNContainer`` a plain
``nn.Sequential``, hence ``conv1.0.0``, with no ``module`` level.)

Neurons carry no parameters, so their names do not matter for weights. Upstream's large model feeds
its main head the real-valued pooled features and only the KD head the spikes; the large-family
configs do the same (``SpikeDistillClsHead(kd_neuron=...)`` after a neuron-free pooling).

Arch variants beyond the upstream constructors: ``'83m-released'`` is the layout of the released
83M weights, whose pre-mixer is ``C -> 1.5C -> C`` (the code writes ``C -> C -> C``; V3 issue #9);
``'173m-c192'`` is the 173M model with ``C0 = 192``, the width of the released spike-masked
autoencoder encoder (``spikmae_12_768``; the fine-tuning code writes 196), so fine-tuning from that
encoder loads every encoder weight.
"""
import copy
from typing import Dict, List, Optional, Sequence, Tuple, Union

from torch import nn

from mmspike.registry import MODELS
from ..layers import SpikeConvBlock, SpikeConvBN, SpikeTransformerBlock
from ..layers.blocks import drop_path_rates
from .base_backbone import BaseSpikeBackbone

# Block settings of the two E-SpikeFormer families (upstream.md, section 2).
_BASE_FAMILY = dict(
    conv_stages=2,
    conv_block=dict(mlp_ratio=4, bias=False, sepconv=dict(kernel_size=7, spike_dwconv=True)),
    transformer_block=dict(
        num_heads=8, mlp_ratio=4, sepconv_kernel=3, pre_mixer=False,
        # Linear Q/K/V, V four times wider, scale 2 / sqrt(d_head).
        attn_cfg=dict(projection='linear', value_ratio=4, scale=None)),
    layer_scale_init_value=0.0)
_LARGE_FAMILY = dict(
    conv_stages=2,
    conv_block=dict(mlp_ratio=4, bias=True, sepconv=None),
    transformer_block=dict(
        num_heads=8, mlp_ratio=4, sepconv_kernel=None, pre_mixer=False,
        # Q/K/V/out: two 1x1 convs C -> 1.5C -> C with BN (re-parameterisable), fixed scale.
        attn_cfg=dict(projection='linear_pair', value_ratio=1, scale=0.125)),
    layer_scale_init_value=1e-6)


def _merge(base: dict, override: dict) -> dict:
    """A deep copy of ``base`` updated with ``override``, nested dicts merged key by key."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _arch(family: dict, channels: Sequence[int], depths: Sequence[int],
          strides: Sequence[int], **overrides) -> dict:
    return _merge(family, dict(overrides, channels=tuple(channels), depths=tuple(depths),
                               strides=tuple(strides)))


@MODELS.register_module()
class ESpikeFormer(BaseSpikeBackbone):
    """E-SpikeFormer backbone (Spike-Driven Transformer V3).

    Layout: stage 0 is the stem ``conv7x7 s2 (real-valued input) -> CNN block (C0/2) -> spiking
    conv3x3 s2 -> depths[0] CNN blocks`` (stride 4); every later stage is a spiking conv3x3
    downsampling by ``strides[i]`` followed by ``depths[i]`` blocks: CNN blocks for the first
    ``conv_stages`` stages, Transformer blocks after. Downsampling convs have a bias and BN.

    * base family ``'2m' '5m' '10m' '19m'``: CNN blocks with a SpikeSepConv (k7) mixer; Transformer
      blocks with a SpikeSepConv (k3) mixer, linear Q/K and a 4x wider V; stages of
      ``1+1, 2, 6, 2`` blocks at strides 4/8/16/16 (stage 4 keeps stride 16).
    * large family ``'83m' '173m'``: plain CNN blocks (biased 3x3 convs), three stages, 12
      Transformer blocks at stride 16 with paired 1x1 Q/K/V/out projections, layer scale
      (init 1e-6); 83M adds a paired 1x1 pre-mixer in every Transformer block
      (``'83m-released'``: 1.5C wide, as the released weights; ``'173m-c192'``: C0 = 192, as the
      released MAE encoder).

    Args:
        arch (str | dict): A key of :attr:`arch_settings`, or a dict with ``channels``,
            ``depths`` and ``strides`` (one per stage; ``strides[0]`` must be 4) and optionally
            ``stem_channels`` (default ``channels[0] // 2``), ``conv_stages``, ``conv_block``
            (:class:`SpikeConvBlock` arguments), ``transformer_block``
            (:class:`SpikeTransformerBlock` arguments) and ``layer_scale_init_value``; keys left
            out (also inside the nested dicts) take the base family's values.
            Defaults to ``'10m'``.
        in_channels (int): Input channels (3 for RGB, 2 for event polarities). Defaults to 3.
        T (int): Time steps a static ``[B, C, H, W]`` image is repeated over. ``[T', B, C, H, W]``
            inputs keep their own T'. Defaults to 1.
        neuron (dict): Neuron config of every spiking layer ("1xD": ``max_spikes=D``).
            Defaults to ``dict(type='MultiSpike', max_spikes=4)``.
        out_indices (Sequence[int]): Stages whose output is returned; negative indices count
            from the last stage. Defaults to ``(-1, )`` (the last stage: 3 for the base family,
            2 for the large one).
        frozen_stages (int): Stages ``0..frozen_stages`` are frozen (no gradients, BN in eval
            mode); -1 freezes nothing. Defaults to -1.
        drop_path_rate (float): Stochastic depth, rising linearly over the Transformer blocks.
            Defaults to 0.
        layer_scale_init_value (float, optional): Initial layer scale of the Transformer blocks;
            None takes the arch's value (0 for the base family, 1e-6 for the large one), 0
            disables layer scale. Defaults to None.
        attn_neuron (dict, optional): Neuron on the attention output; None uses ``neuron``.
            Defaults to None.
        init_cfg (dict | list[dict], optional): Initialization config. Defaults to None.

    Returns (forward):
        tuple[Tensor]: ``[T, B, C_i, H_i, W_i]`` membrane maps of the stages in ``out_indices``,
        with channels :attr:`out_channels` and strides :attr:`out_strides`.
    """
    arch_settings: Dict[str, dict] = {
        '2m': _arch(_BASE_FAMILY, (24, 48, 96, 128), (1, 2, 6, 2), (4, 2, 2, 1)),
        '5m': _arch(_BASE_FAMILY, (32, 64, 128, 192), (1, 2, 6, 2), (4, 2, 2, 1)),
        '10m': _arch(_BASE_FAMILY, (48, 96, 192, 240), (1, 2, 6, 2), (4, 2, 2, 1)),
        '19m': _arch(_BASE_FAMILY, (64, 128, 256, 360), (1, 2, 6, 2), (4, 2, 2, 1)),
        '83m': _arch(_LARGE_FAMILY, (128, 256, 512), (1, 2, 12), (4, 2, 2),
                     transformer_block=dict(pre_mixer=True)),
        '83m-released': _arch(_LARGE_FAMILY, (128, 256, 512), (1, 2, 12), (4, 2, 2),
                              transformer_block=dict(pre_mixer=True, pre_mixer_ratio=1.5)),
        '173m': _arch(_LARGE_FAMILY, (196, 384, 768), (1, 2, 12), (4, 2, 2)),
        '173m-c192': _arch(_LARGE_FAMILY, (192, 384, 768), (1, 2, 12), (4, 2, 2)),
    }
    #: Values of the keys an arch dict leaves out.
    default_arch = _BASE_FAMILY
    #: Arch-dict keys :class:`ESpikeFormer` understands.
    arch_keys = ('channels', 'depths', 'strides', 'stem_channels', 'conv_stages', 'conv_block',
                 'transformer_block', 'layer_scale_init_value')

    def __init__(self,
                 arch: Union[str, dict] = '10m',
                 in_channels: int = 3,
                 T: int = 1,
                 neuron: dict = dict(type='MultiSpike', max_spikes=4),
                 out_indices: Sequence[int] = (-1, ),
                 frozen_stages: int = -1,
                 drop_path_rate: float = 0.0,
                 layer_scale_init_value: Optional[float] = None,
                 attn_neuron: Optional[dict] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(in_channels=in_channels, T=T, init_cfg=init_cfg)
        arch = self._parse_arch(arch)
        channels, depths, strides = arch['channels'], arch['depths'], arch['strides']
        num_stages = len(channels)
        conv_stages = arch['conv_stages']
        if not 0 <= conv_stages <= num_stages:
            raise ValueError(f'conv_stages={conv_stages} must be in [0, {num_stages}]')
        if layer_scale_init_value is None:
            layer_scale_init_value = arch['layer_scale_init_value']
        if layer_scale_init_value < 0:
            raise ValueError(f'layer_scale_init_value must be >= 0 (0 disables it), '
                             f'got {layer_scale_init_value}')

        self.arch = arch
        self.channels = tuple(channels)
        self.depths = tuple(depths)
        self.conv_stages = conv_stages

        conv_cfg = dict(arch['conv_block'], neuron=neuron)
        num_transformer = sum(depths[conv_stages:])
        dpr = drop_path_rates(drop_path_rate, num_transformer, 'linspace')
        block_ids = iter(range(num_transformer))

        def make_block(i: int, c: int) -> nn.Module:
            if i < conv_stages:
                return SpikeConvBlock(c, **conv_cfg)
            return SpikeTransformerBlock(
                c, neuron=neuron, attn_neuron=attn_neuron,
                layer_scale_init_value=layer_scale_init_value,
                drop_path=dpr[next(block_ids)], **arch['transformer_block'])

        self.stages = nn.ModuleList()
        stem_c = arch.get('stem_channels') or channels[0] // 2
        for i, (c, depth, stride) in enumerate(zip(channels, depths, strides)):
            if i == 0:
                # Real-valued image/event input: the first conv has no neuron (MACs, not ACs).
                layers = [SpikeConvBN(in_channels, stem_c, 7, stride=2, bias=True, neuron=None),
                          SpikeConvBlock(stem_c, **conv_cfg),
                          SpikeConvBN(stem_c, c, 3, stride=2, bias=True, neuron=neuron)]
            else:
                layers = [SpikeConvBN(channels[i - 1], c, 3, stride=stride, bias=True,
                                      neuron=neuron)]
            layers += [make_block(i, c) for _ in range(depth)]
            self.stages.append(nn.Sequential(*layers))

        stage_strides, total = [], 1
        for s in strides:
            total *= s
            stage_strides.append(total)
        self._init_outputs(channels, stage_strides, out_indices, frozen_stages)

    def _parse_arch(self, arch: Union[str, dict]) -> dict:
        if isinstance(arch, str):
            return self._check_arch(arch, ())
        arch = self._check_arch(arch, ('channels', 'depths', 'strides'))
        full = _merge(self.default_arch, arch)
        n = len(full['channels'])
        if n == 0 or len(full['depths']) != n or len(full['strides']) != n:
            raise ValueError('arch channels, depths and strides need one entry per stage, got '
                             f"{len(full['channels'])}, {len(full['depths'])}, "
                             f"{len(full['strides'])}")
        if full['strides'][0] != 4:
            raise ValueError(f"strides[0] must be 4 (the stem), got {full['strides'][0]}")
        if any(s not in (1, 2) for s in full['strides'][1:]):
            raise ValueError(f"strides after the stem must be 1 or 2, got {full['strides']}")
        if any(d < 0 for d in full['depths']):
            raise ValueError(f"depths must be >= 0, got {full['depths']}")
        return full

    def get_layer_depth(self, param_name: str, prefix: str = '') -> Tuple[int, int]:
        """Layer id for layer-wise lr decay (``LearningRateDecayOptimWrapperConstructor``).

        As in the upstream fine-tuning code: all CNN stages are layer 0, Transformer block ``j``
        (counted over all Transformer stages) is layer ``j + 1`` (a downsampling conv shares the
        id of the first block after it), anything outside the backbone (the head) is last.

        Returns:
            tuple[int, int]: the layer id and the number of layers.
        """
        num_transformer = sum(self.depths[self.conv_stages:])
        max_id = num_transformer + 2
        if not param_name.startswith(prefix):
            return max_id - 1, max_id
        name = param_name[len(prefix):]
        if not name.startswith('stages.'):
            return 0, max_id
        stage_id, layer = (int(v) for v in name.split('.')[1:3])
        if stage_id < self.conv_stages:
            return 0, max_id
        first = sum(self.depths[self.conv_stages:stage_id])
        return first + max(layer - 1, 0) + 1, max_id
