"""Convert released Spike-Driven-Transformer-V3 (E-SpikeFormer) ImageNet checkpoints to mmspike.

    python tools/model_converters/sdtv3_to_mmspike.py SRC.pth DST.pth [--config CONFIG]

Handles the base family (``Efficient_Spiking_Transformer_{t,s,m,l}``: 5.1M / 10M / 19M) and the
large family (``spikformer12_512`` 83M with its ``rep_conv`` pre-mixer, ``spikformer12_768``
173M), including the distillation head ``head_kd`` (-> ``head.fc_kd`` of
``mmspike.SpikeDistillClsHead``), and the encoder of the large-family spike-masked autoencoder
(``spikmae_12_512`` / ``spikmae_12_768``: its pre-training-only tensors - decoder, mask token,
position embeddings, the encoder's final BN ``norm`` - are dropped and listed). The output is an
MMEngine-style checkpoint ``{'state_dict': ..., 'meta': ...}`` for an ``ImageClassifier`` with an
``mmspike.ESpikeFormer`` backbone (keys ``backbone.*`` and ``head.*``).

The layouts are the ones upstream's code writes under the spikingjelly versions it pins
(0.0.0.0.12 / 0.0.0.0.14, where ``SeqToANNContainer`` is a plain ``nn.Sequential``: large-family
CNN blocks have keys ``ConvBlock*.conv{i}.0.{0,1}.*``). The pre-mixer width is read from the file:
the released 83M weights have ``C -> 1.5C -> C`` (arch ``'83m-released'``), the code
``C -> C -> C`` (arch ``'83m'``). The 173M MAE encoder is ``C0 = 192`` wide (arch ``'173m-c192'``).
Which config fits which file: see the model zoo in ``configs/mmpretrain/README.md``.

The key map is explicit: it is generated block by block from the structure found in the file
(number of Transformer blocks, pre-mixer, KD head) and every upstream key must be mapped and every
mapped key present, otherwise the conversion stops with the offending keys. Upstream ``Conv1d``
token layers become 1x1 ``Conv2d`` (``[O, I, 1] -> [O, I, 1, 1]``). With ``--config`` the result
is also loaded into the config's model with ``strict=True`` (names and shapes).

The file is read with ``torch.load(weights_only=True)``; the only non-tensor class allowed is
``argparse.Namespace`` (upstream training scripts store their arguments in the checkpoint).
"""
import argparse
import os.path as osp
import re
import sys
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor

BN_KEYS = ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked')
# Key-map values are (mmspike key, conversion): '' copies the tensor, 'conv1d' turns a [O, I, 1]
# Conv1d weight into the [O, I, 1, 1] weight of the equivalent 1x1 Conv2d.


class ConversionError(ValueError):
    """The checkpoint does not fit the key map (unmapped / missing keys, bad shapes)."""


# ----------------------------------------------------------------------------- key map pieces
def _bn(m: dict, up: str, mm: str) -> None:
    for k in BN_KEYS:
        m[f'{up}.{k}'] = (f'{mm}.{k}', '')


def _conv(m: dict, up: str, mm: str, bias: bool = False, kind: str = '') -> None:
    m[f'{up}.weight'] = (f'{mm}.weight', kind)
    if bias:
        m[f'{up}.bias'] = (f'{mm}.bias', '')


def _downsampling(m: dict, up: str, mm: str) -> None:
    """``MS_DownSampling``: ``encode_conv`` (biased) + ``encode_bn`` -> ``SpikeConvBN``."""
    _conv(m, f'{up}.encode_conv', f'{mm}.conv', bias=True)
    _bn(m, f'{up}.encode_bn', f'{mm}.bn')


def _sepconv(m: dict, up: str, mm: str) -> None:
    """``SepConv_Spike``: ``pwconv1 / dwconv / pwconv2`` each ``Sequential(conv, bn)``."""
    for part in ('pwconv1', 'dwconv', 'pwconv2'):
        _conv(m, f'{up}.{part}.0', f'{mm}.{part}.conv')
        _bn(m, f'{up}.{part}.1', f'{mm}.{part}.bn')


def _conv_block_base(m: dict, up: str, mm: str) -> None:
    """``MS_ConvBlock_spike_SepConv`` -> ``SpikeConvBlock`` (SepConv k7 + 3x3 channel MLP)."""
    _sepconv(m, f'{up}.Conv', f'{mm}.sepconv')
    for i in (1, 2):
        _conv(m, f'{up}.conv{i}', f'{mm}.mlp.fc{i}.conv')
        _bn(m, f'{up}.bn{i}', f'{mm}.mlp.fc{i}.bn')


def _conv_block_large(m: dict, up: str, mm: str) -> None:
    """``MS_ConvBlock`` of the large family: ``conv{i}`` =
    ``Sequential(SeqToANNContainer(Conv2d(bias), BN))`` -> ``SpikeConvBlock`` without SepConv.
    ``SeqToANNContainer`` is an ``nn.Sequential`` (no ``module`` level in the keys)."""
    for i in (1, 2):
        _conv(m, f'{up}.conv{i}.0.0', f'{mm}.mlp.fc{i}.conv', bias=True)
        _bn(m, f'{up}.conv{i}.0.1', f'{mm}.mlp.fc{i}.bn')


def _token_mlp(m: dict, up: str, mm: str) -> None:
    """``MS_MLP``: biased ``Conv1d`` + ``BatchNorm1d`` pairs -> ``SpikeMLP`` of 1x1 convs."""
    for i in (1, 2):
        _conv(m, f'{up}.fc{i}_conv', f'{mm}.fc{i}.conv', bias=True, kind='conv1d')
        _bn(m, f'{up}.fc{i}_bn', f'{mm}.fc{i}.bn')


def _conv1d_pair(m: dict, up: str, mm: str) -> None:
    """Upstream ``RepConv`` / ``RepConv2`` of the large family (two ``Sequential(Conv1d, BN1d)``)
    -> ``LinearPair`` (``conv1, bn1, conv2, bn2``)."""
    for i in (1, 2):
        _conv(m, f'{up}.conv{i}.0', f'{mm}.conv{i}', kind='conv1d')
        _bn(m, f'{up}.conv{i}.1', f'{mm}.bn{i}')


def _transformer_block_base(m: dict, up: str, mm: str) -> None:
    """``MS_Block_Spike_SepConv`` -> ``SpikeTransformerBlock`` (SepConv k3, linear Q/K/V)."""
    _sepconv(m, f'{up}.conv', f'{mm}.sepconv')
    for p in ('q_conv', 'k_conv', 'v_conv', 'proj_conv'):
        _conv(m, f'{up}.attn.{p}.0', f'{mm}.attn.{p}.0')
        _bn(m, f'{up}.attn.{p}.1', f'{mm}.attn.{p}.1')
    _token_mlp(m, f'{up}.mlp', f'{mm}.mlp')


def _transformer_block_large(m: dict, up: str, mm: str, rep_conv: bool,
                             layer_scale: bool) -> None:
    """Large-family ``MS_Block`` -> ``SpikeTransformerBlock`` (paired 1x1 projections)."""
    if rep_conv:  # 83M: x + RepConv2(N(x)) before the attention
        _conv1d_pair(m, f'{up}.rep_conv', f'{mm}.pre_mixer.1.module')
    for p in ('q_conv', 'k_conv', 'v_conv', 'proj_conv'):
        _conv1d_pair(m, f'{up}.attn.{p}.0', f'{mm}.attn.{p}.0')
        _bn(m, f'{up}.attn.{p}.1', f'{mm}.attn.{p}.1')
    _token_mlp(m, f'{up}.mlp', f'{mm}.mlp')
    if layer_scale:
        for i in (1, 2):
            m[f'{up}.layer_scale{i}'] = (f'{mm}.layer_scale{i}', '')


# ----------------------------------------------------------------------------- structure
BASE_PROBE = 'ConvBlock1_1.0.Conv.pwconv1.0.weight'
LARGE_PROBE = 'ConvBlock1_1.0.conv1.0.0.weight'
#: Tensors of the spike-masked autoencoder that only pre-training uses (dropped, reported).
MAE_ONLY_PREFIXES = ('norm.', 'pos_embed', 'mask_token', 'decoder_embed.', 'decoder_pos_embed',
                     'decoder_blocks.', 'decoder_norm.', 'decoder_pred.')


def _is_mae_only(key: str) -> bool:
    return key.startswith(MAE_ONLY_PREFIXES)


def detect_structure(state: Dict[str, Tensor]) -> dict:
    """Family and block counts of an upstream state dict (raises ConversionError if unknown)."""
    if BASE_PROBE in state:
        family = 'base'
    elif LARGE_PROBE in state:
        family = 'large'
    else:
        hint = ''
        if 'ConvBlock1_1.0.conv1.0.module.0.weight' in state:
            hint = (' (a "...conv1.0.module.0" layout is not what upstream\'s code writes under '
                    'its pinned spikingjelly versions; keys are "...conv1.0.0")')
        raise ConversionError(
            'not a Spike-Driven-Transformer-V3 E-SpikeFormer state dict: found neither '
            f"{BASE_PROBE!r} (base family) nor {LARGE_PROBE!r} (large family){hint}; first keys: "
            f'{list(state)[:5]}')

    def count(prefix: str) -> int:
        ids = {int(mt.group(1)) for k in state for mt in [re.match(rf'{prefix}\.(\d+)\.', k)]
               if mt}
        if ids and ids != set(range(len(ids))):
            raise ConversionError(f'{prefix} blocks are not numbered 0..n-1: {sorted(ids)}')
        return len(ids)

    rep_key = 'block3.0.rep_conv.conv1.0.weight'
    s = dict(family=family, blocks3=count('block3'), blocks4=count('block4'),
             rep_conv=rep_key in state, rep_conv_ratio=None,
             layer_scale='block3.0.layer_scale1' in state,
             head='head.weight' in state, head_kd='head_kd.weight' in state,
             mae=family == 'large' and any(_is_mae_only(k) for k in state))
    if s['rep_conv'] and isinstance(state[rep_key], Tensor) and state[rep_key].dim() >= 2:
        hidden, c = state[rep_key].shape[:2]
        s['rep_conv_ratio'] = hidden / c
    if s['blocks3'] == 0:
        raise ConversionError('the state dict has no block3.* Transformer blocks')
    if family == 'base' and s['blocks4'] == 0:
        raise ConversionError('a base-family state dict needs block4.* blocks (stage 4)')
    if family == 'large' and s['blocks4']:
        raise ConversionError('a large-family state dict has no stage 4, found block4.* keys')
    return s


def build_key_map(structure: dict) -> 'OrderedDict[str, Tuple[str, str]]':
    """The explicit upstream -> mmspike key map of a checkpoint of the given structure
    (:func:`detect_structure`). Values are ``(mmspike key, conversion)``."""
    m: 'OrderedDict[str, Tuple[str, str]]' = OrderedDict()
    large = structure['family'] == 'large'
    conv_block = _conv_block_large if large else _conv_block_base
    bb = 'backbone.stages'
    # stage 0: stem (no neuron), CNN block, spiking downsampling, CNN block; then stage 1
    _downsampling(m, 'downsample1_1', f'{bb}.0.0')
    conv_block(m, 'ConvBlock1_1.0', f'{bb}.0.1')
    _downsampling(m, 'downsample1_2', f'{bb}.0.2')
    conv_block(m, 'ConvBlock1_2.0', f'{bb}.0.3')
    _downsampling(m, 'downsample2', f'{bb}.1.0')
    conv_block(m, 'ConvBlock2_1.0', f'{bb}.1.1')
    conv_block(m, 'ConvBlock2_2.0', f'{bb}.1.2')
    _downsampling(m, 'downsample3', f'{bb}.2.0')
    stages = [('block3', 2, structure['blocks3'])]
    if not large:
        _downsampling(m, 'downsample4', f'{bb}.3.0')
        stages.append(('block4', 3, structure['blocks4']))
    for up_name, stage, n in stages:
        for j in range(n):
            up, mm = f'{up_name}.{j}', f'{bb}.{stage}.{j + 1}'
            if large:
                _transformer_block_large(m, up, mm, structure['rep_conv'],
                                         structure['layer_scale'])
            else:
                _transformer_block_base(m, up, mm)
    if structure['head']:
        _conv(m, 'head', 'head.fc', bias=True)
    if structure['head_kd']:
        _conv(m, 'head_kd', 'head.fc_kd', bias=True)
    return m


# ----------------------------------------------------------------------------- conversion
def _strip_module_prefix(state: Dict[str, Tensor]) -> Dict[str, Tensor]:
    if state and all(k.startswith('module.') for k in state):
        return OrderedDict((k[len('module.'):], v) for k, v in state.items())
    return state


def convert(state: Dict[str, Tensor]) -> Tuple['OrderedDict[str, Tensor]', dict]:
    """Convert an upstream state dict. Returns the mmspike state dict and the structure found.

    Raises:
        ConversionError: listing every unmapped upstream key, every missing mapped key and every
            tensor that cannot take its target layout.
    """
    state = _strip_module_prefix(state)
    structure = detect_structure(state)
    key_map = build_key_map(structure)
    if structure['mae']:
        structure['dropped'] = [k for k in state if _is_mae_only(k)]
        state = OrderedDict((k, v) for k, v in state.items() if not _is_mae_only(k))
    unmapped = [k for k in state if k not in key_map]
    missing = [k for k in key_map if k not in state]
    errors = []
    if unmapped:
        errors.append(f'{len(unmapped)} upstream keys have no mapping: {unmapped[:20]}'
                      f'{" ..." if len(unmapped) > 20 else ""}')
    if missing:
        errors.append(f'{len(missing)} keys of the {structure["family"]}-family layout are '
                      f'missing: {missing[:20]}{" ..." if len(missing) > 20 else ""}')
    out: 'OrderedDict[str, Tensor]' = OrderedDict()
    for up, (mm, kind) in key_map.items():
        if up not in state:
            continue
        t = state[up]
        if not isinstance(t, Tensor):
            errors.append(f'{up!r} is a {type(t).__name__}, not a tensor')
            continue
        if kind == 'conv1d':
            if t.dim() != 3 or t.shape[-1] != 1:
                errors.append(f'{up!r}: expected a [O, I, 1] Conv1d weight, got {tuple(t.shape)}')
                continue
            t = t.unsqueeze(-1)
        out[mm] = t.clone()
    if errors:
        raise ConversionError('cannot convert the checkpoint:\n  ' + '\n  '.join(errors))
    return out, structure


def load_upstream(path: str) -> Dict[str, Tensor]:
    """Read an upstream checkpoint as weights only; returns its model state dict."""
    import argparse as _argparse
    from mmspike.engine import CheckpointError, load_checkpoint_file
    try:  # upstream's training scripts store their argparse.Namespace beside the weights
        with torch.serialization.safe_globals([_argparse.Namespace]):
            ckpt = load_checkpoint_file(path)
    except (CheckpointError, FileNotFoundError) as e:
        # (its message names the file and never suggests the unsafe weights_only=False)
        raise ConversionError(f'cannot convert: {e}') from None
    if isinstance(ckpt, dict):
        for key in ('model', 'state_dict', 'module'):
            if isinstance(ckpt.get(key), dict):
                ckpt = ckpt[key]
                break
    if not isinstance(ckpt, dict) or not ckpt or \
            not all(isinstance(v, Tensor) for v in ckpt.values()):
        raise ConversionError(f'{path!r} holds no state dict of tensors (looked in model, '
                              'state_dict, module)')
    return ckpt


def check_against_config(state: Dict[str, Tensor], config: str, encoder_only: bool = False
                         ) -> None:
    """Load ``state`` into the model of ``config`` with ``strict=True``; errors name the keys.

    ``encoder_only`` (a pre-trained MAE encoder, for fine-tuning): every converted tensor must
    load (same names and shapes); only what fine-tuning adds - layer scales and the classifier
    head(s) - may be missing from the file.
    """
    from mmspike.analysis.config_utils import build_model, load_config
    from mmspike.engine.checkpoint import state_dict_mismatch
    model = build_model(load_config(config))
    problem = state_dict_mismatch(
        model, state,
        allow_missing=(lambda k: k.startswith('head.') or '.layer_scale' in k)
        if encoder_only else None)
    if problem:
        raise ConversionError(f'the converted weights do not fit the model of {config}: {problem}')
    model.load_state_dict(state, strict=not encoder_only)


def parse_args(argv: Optional[List[str]] = None):
    parser = argparse.ArgumentParser(
        description='Convert Spike-Driven-Transformer-V3 checkpoints to mmspike')
    parser.add_argument('src', help='upstream checkpoint (.pth)')
    parser.add_argument('dst', help='output mmspike checkpoint (.pth)')
    parser.add_argument('--config', default=None,
                        help='mmspike config whose model the result must load into (strict)')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    if not osp.isfile(args.src):
        sys.exit(f'error: no such file: {args.src}')
    try:
        state, structure = convert(load_upstream(args.src))
        if args.config:
            check_against_config(state, args.config, encoder_only=structure['mae'])
    except ConversionError as e:
        sys.exit(f'error: {e}')
    meta = dict(converted_from=osp.basename(args.src),
                upstream='BICLab/Spike-Driven-Transformer-V3',
                converter='tools/model_converters/sdtv3_to_mmspike.py',
                family=structure['family'])
    torch.save(dict(state_dict=state, meta=meta), args.dst)
    params = sum(v.numel() for k, v in state.items() if 'running_' not in k
                 and 'num_batches' not in k)
    print(f"converted {len(state)} tensors ({params / 1e6:.2f}M parameters, "
          f"{structure['family']} family, {structure['blocks3']}+{structure['blocks4']} "
          f"Transformer blocks"
          f"{', pre-mixer x%g' % structure['rep_conv_ratio'] if structure['rep_conv'] else ''}"
          f"{', KD head' if structure['head_kd'] else ''}"
          + (f", MAE encoder: {len(structure['dropped'])} pre-training tensors dropped"
             if structure['mae'] else '') + f') -> {args.dst}')
    return dict(structure=structure, num_tensors=len(state))


if __name__ == '__main__':
    main()
