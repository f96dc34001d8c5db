"""Detectors against the upstream code itself: upstream / mmspike plain / fast / fast+cl, one run.

The detection counterpart of ``bench_vs_upstream.py`` (read it first: the same configurations,
checks, interleaved timing and per-configuration memory subprocess; its helpers are imported
from it and from ``bench_train_step.py``). Two networks:

* ``spikeyolo-s``: SpikeYOLO-s. Upstream (``--spikeyolo-upstream`` or
  ``$MMSPIKE_UPSTREAM_SPIKEYOLO``, a clone of BICLab/SpikeYOLO): its ultralytics fork's
  ``DetectionModel`` built from its ``snn_yolov8.yaml`` at scale s, imported at run time from the
  checkout (nothing of it is in this repository; its ``.cuda()`` calls are made no-ops while it is
  built, as in ``tools/model_converters/upstream_reference.py``). mmspike: the model of
  ``configs/mmdet/spikeyolo_s_coco.py`` (``SpikeYOLOBackbone`` + ``SpikeYOLOPAN`` +
  ``SpikeYOLOHead``), weights converted with ``tools/model_converters/spikeyolo_to_mmspike.py``
  and loaded strictly. The network output is the raw per-level head maps ``cat(box 4*16, cls 80)``
  (before DFL; upstream's ``Detect`` returns them in train mode; in eval mode it also decodes
  boxes, DFL + ``dist2bbox``, which its inference timing includes as shipped).
* ``flagship``: the spiking part of the flagship detector (``configs/mmdet/spikeformer_coco.py``:
  E-SpikeFormer 19M + ``SpikeFPN``, 5 outputs). Upstream (``--sdtv3-upstream`` or
  ``$MMSPIKE_UPSTREAM_SDTV3``, a clone of BICLab/Spike-Driven-Transformer-V3): ``SDEFormer``
  (``SDT_V3/Detection/mmdet/models/backbones/sdeformer.py``) and ``SpikeFPN``
  (``.../necks/spike_fpn.py``) of its mmdet fork, imported at run time from the checkout with one
  text substitution each (the ``@MODELS.register_module()`` line is dropped, so that nothing is
  registered in the installed mmdet), built with the literal backbone and neck arguments of its
  ``configs/sdeformer_mask_rcnn/mask-rcnn_sdeformer_fpn_1x_coco.py`` (read from that file's
  ``model = dict(...)``: the config cannot be loaded whole, its dataset base has placeholders). The
  backbone weights are converted with ``tools/model_converters/sdtv3_to_mmspike.py``, the FPN's
  by the explicit key map :data:`FPN_KEYS` (``lateral_convs.i.1.0.conv.*`` ->
  ``lateral_convs.i.conv.*``, same for ``fpn_convs``); upstream's 5-D ``[T=1, B, C, H, W]``
  outputs are averaged over T as mmspike's FPN does.

Weights: the formula weights of ``upstream_reference.py`` (every tensor, BN statistics included,
drawn from a generator seeded by its upstream key), loaded strictly on both sides.

Checks before anything is timed (the run stops on a mismatch):

* eval mode, float64, fixed 2x3x64x64 input: spikeyolo-s head maps of ``plain`` and ``fast``
  bit-identical to upstream's; flagship *backbone* features likewise. Upstream's FPN fires
  differently in eval mode than in training (its ``MultiSpike_norm4`` has ``T=1.0``: training
  rounds ``clamp(u, 0, 4)`` through ``Quant``, eval ``clamp(u, 0, T=1)``, i.e. binary spikes);
  mmspike's ``SpikeFPN`` fires 0..4 in both, as upstream trains. So the flagship's FPN outputs are
  compared in train mode, float64 (under ``no_grad``): bit-identical to upstream's;
* train mode, float32, the first 2 images of the benchmark batch at the benchmark size:
  ``plain`` and ``fast`` against upstream's (reported: bit-identical or the max difference; a
  spiking network turns a last-bit difference into a different spike), ``fast`` bit-identical to
  ``plain`` (a failure otherwise), ``fast+cl`` bit-identical to ``plain`` converted to
  channels-last; the last two also in eval mode.

Measured in ONE process, interleaved (``bench_train_step.interleaved``), median of ``--repeats``:

* training step img/s: ``zero_grad``, forward, a synthetic loss, backward, ``SGD`` step (lr 1e-4,
  momentum 0.9), train mode. The loss is the same for both sides: the mean of squares of every
  output map, summed over the maps (spikeyolo-s: the raw head maps; flagship: the 5 FPN
  outputs). So this times the network's forward and backward, **not** ultralytics' / mmdet's assigner and losses, nor the
  flagship's RPN and RoI heads;
* inference img/s: eval mode under ``torch.no_grad``; ``fast+fold`` and ``fast+cl+fold`` also fold
  the BNs into the convs (``bench_vs_upstream.fold``);
* the ``x`` columns: the median over the rounds of the base's seconds over the configuration's
  in the same round (``bench_vs_upstream.timed``), which cancels machine speed drifting over
  more than a round.

Peak step memory per configuration in its own subprocess (``VmHWM`` rise of one training step
over the resident set just before it, ``MALLOC_MMAP_THRESHOLD_=65536``; see
``bench_vs_upstream.py``).

Environment: upstream's files import ``timm``, ``torchinfo``, ``spikingjelly`` (flagship) and the
ultralytics fork's dependencies (``cv2``, ``yaml``, ...), which mmspike does not need; run with a
Python that has them and mmspike's requirements, e.g. the upstream venv of
``tests/data/upstream_reference/README.md``::

    PYTHONPATH=$PWD /work/upstream/venv/bin/python benchmarks/bench_detectors_vs_upstream.py \\
        --spikeyolo-upstream /work/upstream/spikeyolo --sdtv3-upstream /work/upstream/v3
    python benchmarks/bench_detectors_vs_upstream.py --only flagship   # no upstream: plain vs fast

Defaults: batch 2, 640x640 for spikeyolo-s and 512x512 for the flagship (the short side of
upstream's first training resize, ``(853, 512)``), 2 threads; ``--img-size`` sets both.
"""
import argparse
import contextlib
import copy
import json
import os
import os.path as osp
import sys
from collections import OrderedDict
from typing import Callable, Dict, List, Optional

import torch
from torch import nn

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from bench_vs_upstream import (MMSPIKE_CONFIGS, ROOT, _load_tool, fold,  # noqa: E402
                               inference, probe_memory, ratio_cell, reference, step_memory,
                               table_head, timed)
from bench_vs_upstream import converter as sdtv3_converter  # noqa: E402

yolo_converter = _load_tool('spikeyolo_to_mmspike')

NETWORKS = ('spikeyolo-s', 'flagship')
DEFAULT_SIZE = {'spikeyolo-s': 640, 'flagship': 512}
ENV_VARS = {'spikeyolo-s': 'MMSPIKE_UPSTREAM_SPIKEYOLO', 'flagship': 'MMSPIKE_UPSTREAM_SDTV3'}
YOLO_YAML = osp.join('ultralytics', 'cfg', 'models', 'v8', 'snn_yolov8.yaml')
YOLO_CONFIG = osp.join(ROOT, 'configs', 'mmdet', 'spikeyolo_s_coco.py')
DET_DIR = osp.join('SDT_V3', 'Detection')
DET_BACKBONE = osp.join(DET_DIR, 'mmdet', 'models', 'backbones', 'sdeformer.py')
DET_NECK = osp.join(DET_DIR, 'mmdet', 'models', 'necks', 'spike_fpn.py')
DET_CONFIG = osp.join(DET_DIR, 'configs', 'sdeformer_mask_rcnn',
                      'mask-rcnn_sdeformer_fpn_1x_coco.py')
FLAGSHIP_CONFIG = osp.join(ROOT, 'configs', 'mmdet', 'spikeformer_coco.py')
#: upstream SpikeFPN key (regex) -> mmspike SpikeFPN key: the conv of ``Sequential(neuron,
#: SeqToANNContainer(ConvModule))`` is ``<i>.1.0.conv``; mmspike's ``SpikeConvModule`` has ``conv``
FPN_KEYS = ((r'^(lateral_convs|fpn_convs)\.(\d+)\.1\.0\.conv\.(weight|bias)$', r'\1.\2.conv.\3'), )
CHECK_SHAPE = (2, 3, 64, 64)  # float64 eval check input (float64 convs are slow)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--spikeyolo-upstream', default=os.environ.get(ENV_VARS['spikeyolo-s']),
                   help='checkout of BICLab/SpikeYOLO (default $MMSPIKE_UPSTREAM_SPIKEYOLO)')
    p.add_argument('--sdtv3-upstream', default=os.environ.get(ENV_VARS['flagship']),
                   help='checkout of BICLab/Spike-Driven-Transformer-V3 (default '
                        '$MMSPIKE_UPSTREAM_SDTV3)')
    p.add_argument('--only', nargs='+', default=list(NETWORKS), choices=NETWORKS)
    p.add_argument('--batch-size', type=int, default=2)
    p.add_argument('--img-size', type=int, default=None,
                   help='square input size of every network (default: spikeyolo-s 640, '
                        'flagship 512)')
    p.add_argument('--repeats', type=int, default=5, help='timed runs per configuration')
    p.add_argument('--warmup', type=int, default=1, help='untimed runs per configuration')
    p.add_argument('--threads', type=int, default=2, help='torch CPU threads')
    p.add_argument('--skip', default='', help='comma list of check,train,infer,memory')
    p.add_argument('--memory-probe', default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.spikeyolo_upstream is not None and not osp.isfile(
            osp.join(args.spikeyolo_upstream, YOLO_YAML)):
        p.error(f'--spikeyolo-upstream {args.spikeyolo_upstream!r} is not a SpikeYOLO checkout: '
                f'{YOLO_YAML} not found in it')
    if args.sdtv3_upstream is not None:
        for f in (DET_BACKBONE, DET_NECK, DET_CONFIG):
            if not osp.isfile(osp.join(args.sdtv3_upstream, f)):
                p.error(f'--sdtv3-upstream {args.sdtv3_upstream!r} is not a '
                        f'Spike-Driven-Transformer-V3 checkout: {f} not found in it')
    bad = [s for s in args.skip.split(',') if s and s not in ('check', 'train', 'infer', 'memory')]
    if bad:
        p.error(f'--skip: unknown {bad}, expected a comma list of check,train,infer,memory')
    return args


def upstream_root(args, net: str) -> Optional[str]:
    return args.spikeyolo_upstream if net == 'spikeyolo-s' else args.sdtv3_upstream


def img_size(args, net: str) -> int:
    return args.img_size or DEFAULT_SIZE[net]


def _need(modules: List[str], what: str) -> None:
    import importlib.util
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise SystemExit(
            f'{what} imports {", ".join(missing)}, not installed in {sys.executable}; run this '
            f'benchmark with a Python that has them (e.g. PYTHONPATH={ROOT} '
            f'/work/upstream/venv/bin/python {" ".join(sys.argv)})')


def formula_weights(model: nn.Module) -> 'OrderedDict[str, torch.Tensor]':
    return reference.formula_state_dict(reference.manifest_of(model.state_dict()), torch.float32)


# ----------------------------------------------------------------------------- spikeyolo-s
@contextlib.contextmanager
def _cuda_calls_are_noops():
    """Upstream's ``DetectionModel.__init__`` moves itself (and a probe tensor) to CUDA."""
    saved = torch.nn.Module.cuda, torch.Tensor.cuda
    torch.nn.Module.cuda = lambda self, device=None: self
    torch.Tensor.cuda = lambda self, *a, **k: self
    try:
        yield
    finally:
        torch.nn.Module.cuda, torch.Tensor.cuda = saved


class UpstreamYOLOMaps(nn.Module):
    """Upstream ``DetectionModel``: its raw per-level head maps (train mode: what it returns;
    eval mode: the second element of ``(decoded boxes, maps)``)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x):
        out = self.model(x)
        return list(out if self.training else out[1])


class YOLOMaps(nn.Module):
    """mmspike ``SingleStageDetector``: ``cat(bbox_pred, cls_score)`` per level, before DFL."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x):
        cls_scores, bbox_preds = self.model.bbox_head(self.model.extract_feat(x))
        return [torch.cat([b, c], 1) for b, c in zip(bbox_preds, cls_scores)]


def build_spikeyolo(root: Optional[str]) -> Dict[str, nn.Module]:
    import mmspike.detection  # noqa: F401  (registers SpikeYOLOHead)
    from mmspike.analysis.config_utils import build_model, load_config
    models, state = {}, None
    if root is not None:
        _need(['yaml', 'cv2'], 'the SpikeYOLO ultralytics fork')
        import yaml
        if root not in sys.path:
            sys.path.insert(0, root)
        with _cuda_calls_are_noops():
            from ultralytics.nn.tasks import DetectionModel
            with open(osp.join(root, YOLO_YAML)) as f:
                cfg = yaml.safe_load(f)
            cfg['scale'] = reference.SPIKEYOLO_CASES['spikeyolo_s'][0]
            torch.manual_seed(0)
            up = DetectionModel(cfg, verbose=False)
        up_state = formula_weights(up)
        up.load_state_dict(up_state, strict=True)
        models['upstream'] = UpstreamYOLOMaps(up)
        state, _ = yolo_converter.convert(up_state, [type(b).__name__ for b in up.model])
    torch.manual_seed(0)
    mm = build_model(load_config(YOLO_CONFIG))
    if state is not None:
        mm.load_state_dict(state, strict=True)
    models['mmspike'] = YOLOMaps(mm)
    return models


# ----------------------------------------------------------------------------- flagship
class BackboneNeck(nn.Module):
    """``neck(backbone(x))`` as a list of ``[B, C, H, W]`` maps (upstream's 5-D FPN outputs are
    averaged over their T = 1, as mmspike's FPN does). ``features_only`` stops after the
    backbone (its 5-D features)."""

    def __init__(self, backbone: nn.Module, neck: nn.Module, time_major_out: bool) -> None:
        super().__init__()
        self.backbone = backbone
        self.neck = neck
        self.time_major_out = time_major_out
        self.features_only = False

    def forward(self, x):
        feats = self.backbone(x)
        if self.features_only:
            return list(feats)
        outs = self.neck(feats)
        return [o.mean(0) for o in outs] if self.time_major_out else list(outs)


def import_upstream_detection(root: str):
    """Upstream's ``sdeformer.py`` and ``spike_fpn.py``, imported from the checkout with the
    registry decorator line dropped (nothing registered in the installed mmdet)."""
    _need(['timm', 'torchinfo', 'spikingjelly', 'mmdet', 'mmcv'],
          'upstream\'s SDT_V3 detection code')
    import copyreg
    mods = []
    for path, name in ((DET_BACKBONE, 'mmspike_bench_up_sdeformer'),
                       (DET_NECK, 'mmspike_bench_up_spike_fpn')):
        if name not in sys.modules:
            reference._import_patched(osp.join(root, path), name,
                                      [('@MODELS.register_module()\n', '')])
        mod = sys.modules[name]
        # its neurons hold an instance of their autograd Function (``self.spike = Quant()``),
        # which ``copy.deepcopy`` cannot copy: rebuild it (it has no state)
        for obj in vars(mod).values():
            if isinstance(obj, type) and issubclass(obj, torch.autograd.Function):
                copyreg.pickle(obj, lambda f: (type(f), ()))
        mods.append(mod)
    return mods


def upstream_det_args(root: str) -> Dict[str, dict]:
    """Constructor arguments of ``backbone`` and ``neck`` in upstream's detector config, read
    from the ``model = dict(...)`` statement of the file (its dataset base config holds
    placeholders such as ``data_root = 'your dataset`` and does not parse, so the config cannot
    be loaded whole). Literal arguments only; ``type``, ``_delete_`` and ``init_cfg`` (a
    checkpoint path) are left out."""
    import ast
    path = osp.join(root, DET_CONFIG)
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    model = [n.value for n in tree.body if isinstance(n, ast.Assign)
             and [getattr(t, 'id', None) for t in n.targets] == ['model']]
    if len(model) != 1 or not isinstance(model[0], ast.Call):
        raise RuntimeError(f'{path}: expected one `model = dict(...)` statement')
    out = {}
    for kw in model[0].keywords:
        if kw.arg in ('backbone', 'neck'):
            out[kw.arg] = {a.arg: ast.literal_eval(a.value) for a in kw.value.keywords
                           if a.arg not in ('type', '_delete_', 'init_cfg')}
    if set(out) != {'backbone', 'neck'}:
        raise RuntimeError(f'{path}: model has no backbone or neck dict: {sorted(out)}')
    return out


def convert_fpn(state: Dict[str, torch.Tensor]) -> 'OrderedDict[str, torch.Tensor]':
    """Upstream SpikeFPN keys -> mmspike's (:data:`FPN_KEYS`); every key must be mapped."""
    import re
    out = OrderedDict()
    for k, v in state.items():
        for pat, rep in FPN_KEYS:
            if re.match(pat, k):
                out[re.sub(pat, rep, k)] = v
                break
        else:
            raise RuntimeError(f'upstream SpikeFPN key {k!r} has no mapping in FPN_KEYS')
    return out


def build_flagship(root: Optional[str]) -> Dict[str, nn.Module]:
    from mmengine.registry import MODELS
    import mmspike.models  # noqa: F401  (registers ESpikeFormer, SpikeFPN)
    from mmspike.analysis.config_utils import load_config
    models, state = {}, None
    if root is not None:
        sde, fpn = import_upstream_detection(root)
        up_args = upstream_det_args(root)
        torch.manual_seed(0)
        up = BackboneNeck(sde.SDEFormer(**up_args['backbone']),
                          fpn.SpikeFPN(**up_args['neck']), time_major_out=True)
        up_state = formula_weights(up)
        up.load_state_dict(up_state, strict=True)
        models['upstream'] = up
        prefix = 'backbone.'
        bb, _ = sdtv3_converter.convert(OrderedDict(
            (k[len(prefix):], v) for k, v in up_state.items() if k.startswith(prefix)))
        neck = convert_fpn(OrderedDict(
            (k[len('neck.'):], v) for k, v in up_state.items() if k.startswith('neck.')))
        state = OrderedDict(list(bb.items()) + [(f'neck.{k}', v) for k, v in neck.items()])
    cfg = load_config(FLAGSHIP_CONFIG).model
    torch.manual_seed(0)
    mm = BackboneNeck(MODELS.build(cfg.backbone), MODELS.build(cfg.neck), time_major_out=False)
    if state is not None:
        mm.load_state_dict(state, strict=True)
    models['mmspike'] = mm
    return models


# ----------------------------------------------------------------------------- models
def build_models(args, net: str, with_upstream: bool) -> Dict[str, nn.Module]:
    """``{'upstream': ..., 'plain': ..., 'fast': ..., 'fast+cl': ...}``, same weights."""
    from mmspike.models.execution import set_execution_mode
    build = build_spikeyolo if net == 'spikeyolo-s' else build_flagship
    built = build(upstream_root(args, net) if with_upstream else None)
    models = {k: v for k, v in built.items() if k == 'upstream'}
    for name, (mode, channels_last) in MMSPIKE_CONFIGS.items():
        m = copy.deepcopy(built['mmspike'])
        set_execution_mode(m, mode)
        if channels_last:
            m = m.to(memory_format=torch.channels_last)
        models[name] = m
    return models


def data(args, net: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    s = img_size(args, net)
    return torch.randn(args.batch_size, 3, s, s, generator=g)


def synthetic_loss(outs: List[torch.Tensor]) -> torch.Tensor:
    """Mean of squares of every output map, summed over the maps: the same for both sides, no
    assigner. (A sum of squares, ~4e6 at 640x640, made SGD diverge within a few timed steps:
    the weights went non-finite and the neurons' check stopped the run.)"""
    return sum(o.square().mean() for o in outs)


# ----------------------------------------------------------------------------- checks
def _run(m: nn.Module, dtype, train: bool, x, features_only: bool = False):
    m = copy.deepcopy(m).to(dtype).train(train)
    if isinstance(m, BackboneNeck):
        m.features_only = features_only
    with torch.no_grad():
        return m(x)


def _same(a: List[torch.Tensor], b: List[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(torch.equal(p, q) for p, q in zip(a, b))


def _maxdiff(a: List[torch.Tensor], b: List[torch.Tensor]) -> float:
    return max((p.double() - q.double()).abs().max().item() for p, q in zip(a, b))


def check_outputs(net: str, models: Dict[str, nn.Module], x: torch.Tensor) -> List[str]:
    """Raises on a mismatch; returns the check lines (see the module docstring)."""
    lines = []
    x = x[:2]
    x64 = reference.fixed_input(CHECK_SHAPE, torch.float64)
    nchw = [n for n in models if n != 'upstream' and not MMSPIKE_CONFIGS[n][1]]
    if 'upstream' in models:
        # eval float64 against upstream (flagship: backbone features; its FPN fires binary in eval)
        what = 'head maps' if net == 'spikeyolo-s' else 'backbone features'
        ref = _run(models['upstream'], torch.float64, False, x64, net == 'flagship')
        for n in nchw:
            out = _run(models[n], torch.float64, False, x64, net == 'flagship')
            if not _same(out, ref):
                raise RuntimeError(f'{net}: eval float64 {what} of {n} differ from upstream: max '
                                   f'{_maxdiff(out, ref):.3g}')
            lines.append(f'check: eval float64 {what} {CHECK_SHAPE} of {n} bit-identical to '
                         f'upstream')
        if net == 'flagship':
            ref = _run(models['upstream'], torch.float64, True, x64)
            for n in nchw:
                out = _run(models[n], torch.float64, True, x64)
                if not _same(out, ref):
                    raise RuntimeError(f'{net}: train float64 FPN outputs of {n} differ from '
                                       f'upstream: max {_maxdiff(out, ref):.3g}')
                lines.append(f'check: train-mode float64 FPN outputs {CHECK_SHAPE} of {n} '
                             f'bit-identical to upstream')
        ref32 = _run(models['upstream'], torch.float32, True, x)
        for n in nchw:
            out = _run(models[n], torch.float32, True, x)
            lines.append(f'info: train float32 outputs {tuple(x.shape)} of {n} vs upstream: '
                         + ('bit-identical' if _same(out, ref32) else
                            f'max |diff| {_maxdiff(out, ref32):.3g} (summation order)'))
    # train mode (batch statistics) and eval mode (running statistics; the fast path's BN runs
    # inside the firing pass there, and channels-last convs of spikes skip the zeros)
    plain_cl = copy.deepcopy(models['plain']).to(memory_format=torch.channels_last)
    for train in (True, False):
        mode = 'train' if train else 'eval'
        refs = {'plain': _run(models['plain'], torch.float32, train, x),
                'plain+cl': _run(plain_cl, torch.float32, train, x)}
        for n in models:
            if n in ('upstream', 'plain'):
                continue
            ref_label = 'plain+cl' if MMSPIKE_CONFIGS[n][1] else 'plain'
            expected = refs[ref_label]
            out = _run(models[n], torch.float32, train, x)
            if not _same(out, expected):
                raise RuntimeError(f'{net}: {mode} float32 outputs of {n} differ from '
                                   f'{ref_label}: max {_maxdiff(out, expected):.3g}')
            lines.append(f'check: {mode} float32 outputs {tuple(x.shape)} of {n} bit-identical '
                         f'to {ref_label} (loss {synthetic_loss(out).item():.6g})')
    return lines


# ----------------------------------------------------------------------------- timing
def train_step(model: nn.Module, x) -> Callable[[], None]:
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        synthetic_loss(model(x)).backward()
        opt.step()

    return step


# ----------------------------------------------------------------------------- memory
def memory_probe(args) -> None:
    """Child process: peak memory of one training step of one configuration (JSON on stdout)."""
    net, name = args.memory_probe.split(':')
    models = build_models(args, net, name == 'upstream')
    model = models[name]
    del models
    print(json.dumps(dict(name=name, **step_memory(train_step(model, data(args, net))))))


def bench_memory(args, net: str, names: List[str]) -> Dict[str, dict]:
    argv = ['--batch-size', str(args.batch_size), '--img-size', str(img_size(args, net)),
            '--threads', str(args.threads)]
    for opt, val in (('--spikeyolo-upstream', args.spikeyolo_upstream),
                     ('--sdtv3-upstream', args.sdtv3_upstream)):
        if val:
            argv += [opt, val]
    return probe_memory(__file__, [f'{net}:{n}' for n in names], argv)


# ----------------------------------------------------------------------------- main
def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.memory_probe:
        memory_probe(args)
        return
    skip = set(filter(None, args.skip.split(',')))
    print(f'setting: batch {args.batch_size}, {torch.get_num_threads()} threads, median of '
          f'{args.repeats}; torch {torch.__version__}')
    tables = []
    for net in args.only:
        root = upstream_root(args, net)
        size = img_size(args, net)
        print(f'[{net}] {size}x{size}; upstream: '
              + (root or f'none (plain vs fast only: no checkout given, '
                         f'--{"spikeyolo" if net == "spikeyolo-s" else "sdtv3"}-upstream or '
                         f'${ENV_VARS[net]})'))
        models = build_models(args, net, root is not None)
        x = data(args, net)
        nparams = {n: sum(p.numel() for p in m.parameters()) for n, m in models.items()}
        print(f'[{net}] parameters: ' + ', '.join(f'{n} {v:,}' for n, v in nparams.items()))
        if 'check' not in skip:
            for line in check_outputs(net, models, x):
                print(f'[{net}] {line}')
        rows: Dict[str, Dict[str, float]] = {}
        base = 'upstream' if root is not None else 'plain'
        if 'train' not in skip:
            fns = {n: train_step(copy.deepcopy(m), x) for n, m in models.items()}
            timed(args, net, 'train', fns, rows, base)
            del fns
        if 'infer' not in skip:
            fns = {n: inference(m, x) for n, m in models.items()}
            fns['fast+fold'] = inference(fold(models['fast']), x)
            fns['fast+cl+fold'] = inference(fold(models['fast+cl']), x)
            timed(args, net, 'infer', fns, rows, base)
            del fns
        names = list(models)
        del models
        if 'memory' not in skip:
            for n, r in bench_memory(args, net, names).items():
                print(f'[{net}] memory {json.dumps(r)}')
                rows.setdefault(n, {})['mem'] = r['step_mib']
        tables.append((net, size, base, rows))

    table_head(f'against upstream (or plain without a checkout) (batch {args.batch_size}, '
               f'{torch.get_num_threads()} threads, median of {args.repeats}; x: median over '
               f'the rounds of the base\'s seconds over the configuration\'s in the same round; '
               f'train: forward + mean-of-squares loss + backward + SGD; memory: VmHWM rise of '
               f'one training step, own subprocess)',
               f'{"network":16s} {"config":12s} {"train img/s":>12s} {"x":>6s} '
               f'{"infer img/s":>12s} {"x":>6s} {"step MiB":>9s} {"x":>6s}')

    for net, size, base, rows in tables:
        label = f'{net} {size}'
        for n in rows:
            print(f'{label:16s} {n:12s} {ratio_cell(rows, base, n, "train", (12, 2))} '
                  f'{ratio_cell(rows, base, n, "infer", (12, 2))} '
                  f'{ratio_cell(rows, base, n, "mem", (9, 0))}')


if __name__ == '__main__':
    main()
