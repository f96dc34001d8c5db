"""Convert released SpikeYOLO (BICLab/SpikeYOLO) checkpoints to mmspike, without running them.

    python tools/model_converters/spikeyolo_to_mmspike.py SRC.pt DST.pth [--config CONFIG]

A released SpikeYOLO checkpoint is an ultralytics checkpoint: a pickled dict whose ``model`` (and
``ema``) entry is the whole ``DetectionModel`` object, saved in float16. Unpickling it normally
imports the ultralytics fork and runs whatever the pickle names. This converter never does:

* the file is read by a **restricted unpickler**: every class of ``ultralytics.*`` and
  ``torch.nn.modules.*`` becomes an inert placeholder that only keeps the pickled state (its
  parameters, buffers and sub-modules); tensors are rebuilt by torch's own functions; any other
  global is refused with its name (:class:`ConversionError`);
* the upstream state dict is rebuilt from the placeholders (the names ``state_dict()`` would
  give, ``model.{i}.*``), then **mapped by name**, block by block, onto mmspike's SpikeYOLO
  (``SpikeYOLOBackbone`` + ``SpikeYOLOPAN`` + ``SpikeYOLOHead``). The two sides hold the same
  tensors in the same block order, but their separable and re-parameterisable convs register
  sub-layers in a different order, so nothing is ever matched by position. Every upstream tensor
  must be mapped and every mapped one present; the fixed DFL weights (``0..reg_max-1``) are
  checked and dropped (mmspike keeps them as a constant).

The block layout follows upstream's ``snn_yolov8.yaml`` (model index -> mmspike module):
``1, 3, 5, 7`` stage downsamplings, ``2, 4, 6, 8`` stage blocks, ``9`` SPPF; PAN ``10`` reduce5,
``12`` td_block4, ``14`` reduce4, ``16`` td_block3, ``18`` fuse3, ``19`` out_block3, ``20`` down3,
``22`` out_block4, ``23`` down4, ``25`` out_block5; ``26`` the detection head. Half-precision
weights are converted to float32. Ultralytics builds every BatchNorm with eps 1e-3 (not stored in
the file); mmspike's SpikeYOLO modules default to it. With ``--config`` the result is loaded
strictly into the config's model.
Use a config that fires like upstream (``round_mode='half_even'``: upstream rounds with
``torch.round``), e.g. ``configs/mmdet/spikeyolo_s_coco.py``.
"""
import argparse
import os.path as osp
import pickle
import re
import sys
import types
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor

BN_KEYS = ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked')


class ConversionError(ValueError):
    """The checkpoint is not a SpikeYOLO checkpoint this converter can map."""


# ----------------------------------------------------------------------------- safe reading
class Inert:
    """Stand-in for a class named in the checkpoint: it keeps what the pickle gives it (the
    object's state, or constructor arguments) and runs nothing of the original class."""

    _qualname = 'Inert'

    def __new__(cls, *args, **kwargs):
        obj = object.__new__(cls)
        object.__setattr__(obj, '_inert_args', (args, kwargs))
        object.__setattr__(obj, '_inert_state', None)
        return obj

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        object.__setattr__(self, '_inert_state', state)

    def __repr__(self):
        return f'<inert {self._qualname}>'


#: Module prefixes whose classes become inert placeholders.
PLACEHOLDER_MODULES = ('ultralytics.', 'torch.nn.modules.')
#: The only real globals a checkpoint may name (tensor rebuilding and plain containers).
ALLOWED_GLOBALS = {
    ('collections', 'OrderedDict'): OrderedDict,
    ('builtins', 'set'): set,
    ('__builtin__', 'set'): set,
    ('torch._utils', '_rebuild_tensor_v2'): torch._utils._rebuild_tensor_v2,
    ('torch._utils', '_rebuild_parameter'): torch._utils._rebuild_parameter,
    ('torch', 'Size'): torch.Size,
}
_placeholders: Dict[str, type] = {}


def _placeholder(module: str, name: str) -> type:
    qual = f'{module}.{name}'
    if qual not in _placeholders:
        _placeholders[qual] = type(name, (Inert, ), dict(_qualname=qual))
    return _placeholders[qual]


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that maps checkpoint classes to :class:`Inert` placeholders and refuses every
    other global by name."""

    def find_class(self, module: str, name: str):
        if (module, name) in ALLOWED_GLOBALS:
            return ALLOWED_GLOBALS[(module, name)]
        if module == 'torch' and name.endswith('Storage') and hasattr(torch, name):
            return getattr(torch, name)  # storage type tags (the data is torch's own)
        if (module + '.').startswith(PLACEHOLDER_MODULES) and re.fullmatch(r'[A-Za-z_]\w*',
                                                                           name):
            return _placeholder(module, name)
        raise ConversionError(f'refusing to load global {module}.{name} from the checkpoint '
                              '(only model classes, kept as inert placeholders, and tensor '
                              'data are read)')


_restricted_pickle = types.SimpleNamespace(Unpickler=RestrictedUnpickler, load=None,
                                           __name__='restricted_pickle')


def _load_restricted(path: str):
    def load(f, **kwargs):
        return RestrictedUnpickler(f, **kwargs).load()

    _restricted_pickle.load = load
    try:
        return torch.load(path, map_location='cpu', weights_only=False,
                          pickle_module=_restricted_pickle)
    except ConversionError:
        raise
    except Exception as e:
        raise ConversionError(f'cannot read {path!r} as a SpikeYOLO checkpoint: {e}') from e


def _module_state(obj, prefix: str, out: 'OrderedDict[str, Tensor]') -> None:
    """The ``state_dict()`` entries of a placeholder ``nn.Module`` (parameters, persistent
    buffers, then sub-modules, as ``nn.Module.state_dict`` orders them)."""
    state = obj._inert_state if isinstance(obj, Inert) else None
    if not isinstance(state, dict) or '_modules' not in state:
        raise ConversionError(f'{prefix or "the model"} is not a pickled nn.Module '
                              f'({obj!r})')
    for name, p in state.get('_parameters', {}).items():
        if p is not None:
            out[prefix + name] = p.detach() if isinstance(p, Tensor) else p
    skip = state.get('_non_persistent_buffers_set', set())
    for name, b in state.get('_buffers', {}).items():
        if b is not None and name not in skip:
            out[prefix + name] = b
    for name, child in state['_modules'].items():
        if child is not None:
            _module_state(child, f'{prefix}{name}.', out)


def load_upstream(path: str) -> Tuple['OrderedDict[str, Tensor]', List[str]]:
    """Read a SpikeYOLO checkpoint safely. Returns its model's state dict (``model.{i}.*``) and
    the class names of its top-level blocks."""
    ckpt = _load_restricted(path)
    if isinstance(ckpt, Inert):
        model = ckpt
    elif isinstance(ckpt, dict):
        model = ckpt.get('ema') or ckpt.get('model')
    else:
        model = None
    if not isinstance(model, Inert):
        raise ConversionError(f'{path!r} holds no pickled model object under "ema" or "model"')
    state: 'OrderedDict[str, Tensor]' = OrderedDict()
    _module_state(model, '', state)
    seq = model._inert_state['_modules'].get('model')
    blocks = [type(b).__name__ for b in seq._inert_state['_modules'].values()] \
        if isinstance(seq, Inert) else []
    return state, blocks


# ----------------------------------------------------------------------------- key map
def _bn(m, up, mm):
    for k in BN_KEYS:
        m[f'{up}.{k}'] = f'{mm}.{k}'


def _spike_conv(m, up, mm, bn=True, bias=False):
    """``MS_StandardConv`` / ``SpikeConv`` (``conv`` + ``bn``) -> ``SpikeConvBN``."""
    m[f'{up}.conv.weight'] = f'{mm}.conv.weight'
    if bias:
        m[f'{up}.conv.bias'] = f'{mm}.conv.bias'
    if bn:
        _bn(m, f'{up}.bn', f'{mm}.bn')


def _downsampling(m, up, mm):
    m[f'{up}.encode_conv.weight'] = f'{mm}.conv.weight'
    m[f'{up}.encode_conv.bias'] = f'{mm}.conv.bias'
    _bn(m, f'{up}.encode_bn', f'{mm}.bn')


def _sepconv(m, up, mm):
    """Upstream ``SepConv`` (``pwconv1, dwconv2, pwconv3 = SepRepConv, bn1..bn3``; SepRepConv
    ``body = (BNAndPadLayer, Sequential(1x1, depthwise))``) -> ``YOLOSepConv`` (``pwconv1``,
    ``dwconv`` SpikeConvBNs; ``pwconv2 = TimeDistributed(Sequential(SepRepConv, BN))`` with
    ``SepRepConv.body = (BNAndPad, 1x1, depthwise)``)."""
    m[f'{up}.pwconv1.weight'] = f'{mm}.pwconv1.conv.weight'
    _bn(m, f'{up}.bn1', f'{mm}.pwconv1.bn')
    m[f'{up}.dwconv2.weight'] = f'{mm}.dwconv.conv.weight'
    _bn(m, f'{up}.bn2', f'{mm}.dwconv.bn')
    _bn(m, f'{up}.pwconv3.body.0.bn', f'{mm}.pwconv2.module.0.body.0')
    m[f'{up}.pwconv3.body.1.0.weight'] = f'{mm}.pwconv2.module.0.body.1.weight'
    m[f'{up}.pwconv3.body.1.1.weight'] = f'{mm}.pwconv2.module.0.body.2.weight'
    _bn(m, f'{up}.bn3', f'{mm}.pwconv2.module.1')


def _repconv(m, up, mm):
    """Upstream ``RepConv.body = (1x1, BNAndPadLayer, Sequential(depthwise 3x3, 1x1, BN))`` ->
    mmspike ``RepConv`` (``conv1, bn1, dwconv, conv2, bn2``)."""
    m[f'{up}.body.0.weight'] = f'{mm}.conv1.weight'
    _bn(m, f'{up}.body.1.bn', f'{mm}.bn1')
    m[f'{up}.body.2.0.weight'] = f'{mm}.dwconv.weight'
    m[f'{up}.body.2.1.weight'] = f'{mm}.conv2.weight'
    _bn(m, f'{up}.body.2.2', f'{mm}.bn2')


def _conv_block(m, up, mm):
    """``MS_ConvBlock`` -> ``MSConvBlock``."""
    _sepconv(m, f'{up}.Conv', f'{mm}.sepconv')
    for i in (1, 2):
        _repconv(m, f'{up}.conv{i}', f'{mm}.conv{i}.0')
        _bn(m, f'{up}.bn{i}', f'{mm}.conv{i}.1')


def _all_conv_block(m, up, mm):
    """``MS_AllConvBlock`` -> ``MSAllConvBlock``."""
    _sepconv(m, f'{up}.Conv', f'{mm}.sepconv')
    for i in (1, 2):
        _spike_conv(m, f'{up}.conv{i}', f'{mm}.conv{i}')


def _sppf(m, up, mm):
    _spike_conv(m, f'{up}.cv1', f'{mm}.conv1')
    _spike_conv(m, f'{up}.cv2', f'{mm}.conv2')


BLOCK_MAPS = dict(MS_DownSampling=_downsampling, MS_AllConvBlock=_all_conv_block,
                  MS_ConvBlock=_conv_block, SpikeSPPF=_sppf, MS_StandardConv=_spike_conv)
#: (upstream model index, expected block type, mmspike module); stage blocks are added by
#: :func:`build_key_map` from the counts found in the file.
BACKBONE = [(1, 'MS_DownSampling', 'backbone.stages.0.0'), (2, 'MS_AllConvBlock', 'stage0'),
            (3, 'MS_DownSampling', 'backbone.stages.1.0'), (4, 'MS_AllConvBlock', 'stage1'),
            (5, 'MS_DownSampling', 'backbone.stages.2.0'), (6, 'MS_ConvBlock', 'stage2'),
            (7, 'MS_DownSampling', 'backbone.stages.3.0'), (8, 'MS_ConvBlock', 'stage3'),
            (9, 'SpikeSPPF', 'sppf')]
NECK = [(10, 'MS_StandardConv', 'neck.reduce5'), (12, 'MS_ConvBlock', 'neck.td_block4'),
        (14, 'MS_StandardConv', 'neck.reduce4'), (16, 'MS_AllConvBlock', 'neck.td_block3'),
        (18, 'MS_StandardConv', 'neck.fuse3'), (19, 'MS_AllConvBlock', 'neck.out_block3'),
        (20, 'MS_StandardConv', 'neck.down3'), (22, 'MS_ConvBlock', 'neck.out_block4'),
        (23, 'MS_StandardConv', 'neck.down4'), (25, 'MS_ConvBlock', 'neck.out_block5')]
NO_PARAMS = {0: 'MS_GetT', 11: 'Upsample', 13: 'Concat', 15: 'Upsample', 17: 'Concat',
             21: 'Concat', 24: 'Concat'}
HEAD_INDEX = 26


def _repeats(state: Dict[str, Tensor], idx: int, probe: str) -> Tuple[int, bool]:
    """How many blocks upstream layer ``idx`` repeats, and whether they are nested
    (ultralytics wraps n > 1 repeats in an ``nn.Sequential``: ``model.{idx}.{j}.*``)."""
    if f'model.{idx}.{probe}' in state:
        return 1, False
    ids = {int(mt.group(1)) for k in state
           for mt in [re.match(rf'model\.{idx}\.(\d+)\.{re.escape(probe)}$', k)] if mt}
    if not ids or ids != set(range(len(ids))):
        raise ConversionError(f'upstream layer model.{idx}: no blocks found (looked for '
                              f'model.{idx}.{probe} and model.{idx}.<j>.{probe})')
    return len(ids), True


def build_key_map(state: Dict[str, Tensor], blocks: Optional[List[str]] = None
                  ) -> Tuple['OrderedDict[str, str]', dict]:
    """The explicit upstream -> mmspike key map for ``state``; also returns the structure
    (blocks per stage, number of head levels, blocks mapped)."""
    if blocks:
        expected = {i: t for i, t, _ in BACKBONE + NECK}
        expected.update(NO_PARAMS)
        expected[HEAD_INDEX] = 'SpikeDetect'
        wrong = [f'model.{i}: {b} (expected {expected.get(i)})' for i, b in enumerate(blocks)
                 if expected.get(i) not in (b, None) and b != 'Sequential']
        if len(blocks) != HEAD_INDEX + 1 or wrong:
            raise ConversionError(f'not the SpikeYOLO snn_yolov8 layout: {len(blocks)} blocks '
                                  f'(expected {HEAD_INDEX + 1}); {wrong[:5]}')
    m: 'OrderedDict[str, str]' = OrderedDict()
    counts, mapped = [], 0
    for idx, kind, target in BACKBONE + NECK:
        fn = BLOCK_MAPS[kind]
        if target.startswith('stage'):
            stage = int(target[-1])
            n, nested = _repeats(state, idx, 'Conv.pwconv1.weight')
            counts.append(n)
            for j in range(n):
                fn(m, f'model.{idx}.{j}' if nested else f'model.{idx}',
                   f'backbone.stages.{stage}.{j + 1}')
            mapped += n
        elif target == 'sppf':
            fn(m, f'model.{idx}', f'backbone.stages.3.{counts[3] + 1}')
            mapped += 1
        else:
            fn(m, f'model.{idx}', target)
            mapped += 1
    levels = {int(mt.group(1)) for k in state
              for mt in [re.match(rf'model\.{HEAD_INDEX}\.cv2\.(\d+)\.', k)] if mt}
    if not levels:
        raise ConversionError(f'no detection head found (model.{HEAD_INDEX}.cv2.*)')
    for i in sorted(levels):
        for up, mm in (('cv2', 'reg_branches'), ('cv3', 'cls_branches')):
            p, q = f'model.{HEAD_INDEX}.{up}.{i}', f'bbox_head.{mm}.{i}'
            _spike_conv(m, f'{p}.0', f'{q}.0')
            _spike_conv(m, f'{p}.1', f'{q}.1')
            _spike_conv(m, f'{p}.2', f'{q}.2', bn=False, bias=True)
    mapped += 1
    return m, dict(stage_blocks=counts, levels=len(levels), blocks_mapped=mapped)


DFL_KEY = f'model.{HEAD_INDEX}.dfl.conv.weight'


def convert(state: Dict[str, Tensor], blocks: Optional[List[str]] = None
            ) -> Tuple['OrderedDict[str, Tensor]', dict]:
    """Map an upstream SpikeYOLO state dict onto mmspike's keys (float16 -> float32).

    Raises:
        ConversionError: listing unmapped / missing keys, or a DFL weight that is not
            ``0 .. reg_max - 1``.
    """
    key_map, structure = build_key_map(state, blocks)
    errors = []
    if DFL_KEY in state:
        w = state[DFL_KEY].float().flatten()
        if not torch.equal(w, torch.arange(w.numel(), dtype=torch.float32)):
            errors.append(f'{DFL_KEY} is not the fixed DFL integral 0..{w.numel() - 1}')
    else:
        errors.append(f'{DFL_KEY} (the DFL integral weights) is missing')
    unmapped = [k for k in state if k not in key_map and k != DFL_KEY]
    missing = [k for k in key_map if k not in state]
    if unmapped:
        errors.append(f'{len(unmapped)} upstream tensors have no mapping: {unmapped[:20]}')
    if missing:
        errors.append(f'{len(missing)} tensors of the SpikeYOLO layout are missing: '
                      f'{missing[:20]}')
    if errors:
        raise ConversionError('cannot convert the checkpoint:\n  ' + '\n  '.join(errors))
    out: 'OrderedDict[str, Tensor]' = OrderedDict()
    for up, mm in key_map.items():
        t = state[up]
        if not isinstance(t, Tensor):
            raise ConversionError(f'{up!r} is a {type(t).__name__}, not a tensor')
        # released files are float16: half precision becomes float32, other dtypes are kept
        half = t.dtype in (torch.float16, torch.bfloat16)
        out[mm] = t.float() if half else t.clone()
    structure['num_tensors'] = len(out)
    return out, structure


def check_against_config(state: Dict[str, Tensor], config: str) -> None:
    """Load ``state`` into the model of ``config`` with ``strict=True``; errors name the keys."""
    from mmspike.analysis.config_utils import build_model, load_config
    from mmspike.engine.checkpoint import state_dict_mismatch
    model = build_model(load_config(config))
    problem = state_dict_mismatch(model, state)
    if problem:
        raise ConversionError(f'the converted weights do not fit the model of {config}: {problem}')
    model.load_state_dict(state, strict=True)


def parse_args(argv: Optional[List[str]] = None):
    parser = argparse.ArgumentParser(description='Convert SpikeYOLO checkpoints to mmspike')
    parser.add_argument('src', help='upstream ultralytics checkpoint (.pt)')
    parser.add_argument('dst', help='output mmspike checkpoint (.pth)')
    parser.add_argument('--config', default=None,
                        help='mmspike config whose model the result must load into (strict)')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    if not osp.isfile(args.src):
        sys.exit(f'error: no such file: {args.src}')
    try:
        upstream, blocks = load_upstream(args.src)
        state, structure = convert(upstream, blocks)
        if args.config:
            check_against_config(state, args.config)
    except ConversionError as e:
        sys.exit(f'error: {e}')
    meta = dict(converted_from=osp.basename(args.src), upstream='BICLab/SpikeYOLO',
                converter='tools/model_converters/spikeyolo_to_mmspike.py')
    torch.save(dict(state_dict=state, meta=meta), args.dst)
    params = sum(v.numel() for k, v in state.items() if 'running_' not in k
                 and 'num_batches' not in k)
    print(f'converted {len(state)} tensors ({params / 1e6:.2f}M parameters, '
          f'{structure["blocks_mapped"]} blocks, stage blocks {structure["stage_blocks"]}, '
          f'{structure["levels"]} head levels) -> {args.dst}')
    return structure


if __name__ == '__main__':
    main()
