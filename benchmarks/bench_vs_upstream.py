"""E-SpikeFormer against the upstream code itself: upstream / mmspike plain / mmspike fast, one run.

With an upstream checkout (``--upstream PATH`` or ``$MMSPIKE_UPSTREAM_SDTV3``, a clone of
BICLab/Spike-Driven-Transformer-V3), upstream's own model file
(``SDT_V3/Classification/Model_Base/models.py``) is imported at run time from that path, unchanged
(nothing of it is in this repository), and its ``Efficient_Spiking_Transformer_{t,s,m,l}`` is
built. Its weights (the formula weights of ``tools/model_converters/upstream_reference.py``: every
tensor, BN statistics included, drawn from a generator seeded by its key) are converted with
``tools/model_converters/sdtv3_to_mmspike.py`` and loaded strictly into the model of mmspike's
config (``configs/mmpretrain/e-spikeformer-<arch>_1x4_8xb128_in1k.py``, an mmpretrain
``ImageClassifier``; logits from ``mode='tensor'``). Before anything is timed the outputs are
checked: eval-mode float64 logits of all paths bit-identical to upstream's, and the float32
training-mode logits and loss of the benchmark batch equal up to float32 summation order.
Without a checkout only mmspike's plain and fast paths are measured.

Configurations: ``upstream`` (its model as shipped, NCHW), mmspike ``plain`` and ``fast``
(NCHW, the same weights), and ``fast+cl``: the fast path on a channels-last model (weights
converted with ``model.to(memory_format=torch.channels_last)``; the input stays NCHW). The
memory format is state of the model, not of the execution mode: plain and fast are
bit-identical in either format (``tests/test_models/test_backbones/test_fast_plain_backbone.py``;
checked below for ``fast+cl`` against the plain path converted to channels-last; upstream's
model converted to channels-last is not bit-identical to it, its Conv1d token layers run other
kernels). What channels-last changes is the convs'
summation order (so its bits differ from upstream's NCHW ones) and their speed: oneDNN's NCHW
depthwise-conv backward is several times slower than its channels-last one (the 7x7 depthwise
convs of the CNN stages take about half of upstream's training step).

Measured, in ONE process, interleaved (each repeat runs every configuration once, the order
rotating between repeats, so drifting machine load hits all alike), median of ``--repeats``;
the ``x`` columns are the median over the rounds of upstream's (or plain's) seconds over the
configuration's in the same round (a paired ratio: on a shared VM single runs move by +-30%):

* training step img/s: ``zero_grad``, forward, cross-entropy, backward, ``SGD`` step (momentum
  0.9), train mode;
* inference img/s: eval mode under ``torch.no_grad``; ``fast+fold`` also folds the BNs into
  the convs (:func:`mmspike.models.layers.fuse_conv_bn`; exact up to float rounding);
* with ``--conv-floor``, each configuration's convolutions alone: the ``aten.convolution`` and
  ``aten.convolution_backward`` calls of one step (and the fast path's conv kernels,
  :mod:`mmspike.models.layers.conv_grad` and :mod:`~mmspike.models.layers.conv_fwd`), recorded
  and replayed on the same tensors in the same interleaved run. The fast path must keep the
  convolutions' summation order (bit-identical outputs), so upstream's time over these seconds
  is the most it could reach if every other op took no time.

Peak step memory is measured per configuration in its own subprocess, as in
``bench_train_step.py``: the rise of the resident-set high-water mark (``VmHWM`` of
``/proc/self/status``, reset through ``/proc/self/clear_refs`` just before the step) over the
resident set just before the step, when model, gradients and optimizer state exist (so the rise
is activations and temporaries), with ``MALLOC_MMAP_THRESHOLD_=65536`` so freed tensors leave
the resident set at once. (``tracemalloc`` does not see torch's allocations; ``ru_maxrss``
inherits the parent's resident set.)

Environment: upstream's file imports ``timm``, ``einops`` and ``torchinfo``, which mmspike does
not need; run the benchmark with a Python that has them and mmspike's requirements, e.g. the
upstream venv of ``tests/data/upstream_reference/README.md`` with this checkout on the path::

    PYTHONPATH=$PWD /work/upstream/venv/bin/python benchmarks/bench_vs_upstream.py \\
        --upstream /work/upstream/v3 --arch 10m 19m --threads 2
    python benchmarks/bench_vs_upstream.py --arch 10m        # no upstream: plain vs fast
"""
import argparse
import copy
import importlib.util
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
from typing import Callable, Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import nn

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from bench_train_step import (_peak_rss_mib, _reset_peak_rss, _rss_mib,  # noqa: E402
                              interleaved)

ENV_VAR = 'MMSPIKE_UPSTREAM_SDTV3'
#: arch -> (upstream constructor of Model_Base/models.py, mmspike config)
ARCHS = {
    '2m': ('Efficient_Spiking_Transformer_t', 'e-spikeformer-2m_1x4_8xb128_in1k.py'),
    '5m': ('Efficient_Spiking_Transformer_s', 'e-spikeformer-5m_1x4_8xb128_in1k.py'),
    '10m': ('Efficient_Spiking_Transformer_m', 'e-spikeformer-10m_1x4_8xb128_in1k.py'),
    '19m': ('Efficient_Spiking_Transformer_l', 'e-spikeformer-19m_1x4_8xb128_in1k.py'),
}
UPSTREAM_FILE = osp.join('SDT_V3', 'Classification', 'Model_Base', 'models.py')
#: mmspike configurations: name -> (execution mode, channels-last weights). The memory format
#: is state of the model (its weights), not of the execution mode: fast and plain are
#: bit-identical in either format (tests/test_models/test_backbones/test_fast_plain_backbone.py);
#: channels-last changes the convs' summation order, so its bits differ from upstream's (the
#: function is the same: checked below up to float32 rounding).
MMSPIKE_CONFIGS = {'plain': ('plain', False), 'fast': ('fast', False),
                   'fast+cl': ('fast', True)}


def _load_tool(name: str):
    path = osp.join(ROOT, 'tools', 'model_converters', f'{name}.py')
    spec = importlib.util.spec_from_file_location(f'_bench_{name}', path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


converter = _load_tool('sdtv3_to_mmspike')
reference = _load_tool('upstream_reference')


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--upstream', default=os.environ.get(ENV_VAR),
                   help=f'checkout of Spike-Driven-Transformer-V3 (default ${ENV_VAR}); '
                        'without it only plain vs fast is measured')
    p.add_argument('--arch', nargs='+', default=['10m'], choices=sorted(ARCHS))
    p.add_argument('--batch-size', type=int, default=8)
    p.add_argument('--img-size', type=int, default=224)
    p.add_argument('--repeats', type=int, default=5, help='timed runs per configuration')
    p.add_argument('--warmup', type=int, default=1, help='untimed runs per configuration')
    p.add_argument('--threads', type=int, default=2, help='torch CPU threads')
    p.add_argument('--skip', default='', help='comma list of check,train,infer,memory')
    p.add_argument('--profile', default=None, metavar='CONFIG',
                   help='print a torch.profiler op table of one training step and one '
                        'inference of CONFIG (upstream, plain, fast) instead of timing')
    p.add_argument('--conv-floor', action='store_true',
                   help='also time each configuration\'s convolutions alone (recorded from one '
                        'step, replayed in the same interleaved run) and print the bound they '
                        'set: upstream\'s time over them')
    p.add_argument('--memory-probe', default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.upstream is not None and not osp.isfile(osp.join(args.upstream, UPSTREAM_FILE)):
        p.error(f'--upstream {args.upstream!r} is not a Spike-Driven-Transformer-V3 checkout: '
                f'{UPSTREAM_FILE} not found in it')
    return args


# ----------------------------------------------------------------------------- models
def import_upstream(root: str):
    """Upstream's ``Model_Base/models.py`` as a module (imported from the checkout, unchanged)."""
    missing = [m for m in ('timm', 'einops', 'torchinfo')
               if importlib.util.find_spec(m) is None]
    if missing:
        raise SystemExit(
            f'upstream\'s {UPSTREAM_FILE} imports {", ".join(missing)}, not installed in '
            f'{sys.executable}; run this benchmark with a Python that has them (e.g. '
            f'PYTHONPATH={ROOT} /work/upstream/venv/bin/python {" ".join(sys.argv)})')
    name = 'mmspike_bench_upstream_models'
    if name in sys.modules:
        return sys.modules[name]
    return reference._import_patched(osp.join(root, UPSTREAM_FILE), name)


def formula_weights(model: nn.Module) -> Dict[str, torch.Tensor]:
    """The formula weights of ``model``'s state dict (non-trivial BN statistics included)."""
    return reference.formula_state_dict(reference.manifest_of(model.state_dict()),
                                        torch.float32)


def build_mmspike(arch: str, up_state: Optional[Dict[str, torch.Tensor]]) -> nn.Module:
    """The config's classifier; with upstream weights given, converted and loaded strictly."""
    import mmspike.classification  # noqa: F401  (registers the classifier parts)
    from mmengine.registry import MODELS
    from mmspike.analysis.config_utils import load_config
    cfg = load_config(osp.join(ROOT, 'configs', 'mmpretrain', ARCHS[arch][1]))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    if up_state is not None:
        state, _ = converter.convert(up_state)
        model.load_state_dict(state, strict=True)
    return model


class Logits(nn.Module):
    """``model(x, mode='tensor')`` as a plain ``forward(x)``: the same call for both sides."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x, mode='tensor')


def build_models(args, arch: str, with_upstream: bool) -> Dict[str, nn.Module]:
    """``{'upstream': ..., 'plain': ..., 'fast': ...}``, one object each, same weights."""
    from mmspike.models.execution import set_execution_mode
    models = {}
    up_state = None
    if with_upstream:
        up = import_upstream(args.upstream)
        torch.manual_seed(0)
        upstream = getattr(up, ARCHS[arch][0])()
        up_state = formula_weights(upstream)
        upstream.load_state_dict(up_state, strict=True)
        models['upstream'] = upstream
    mm = Logits(build_mmspike(arch, up_state))
    for name in MMSPIKE_CONFIGS:
        mode, channels_last = MMSPIKE_CONFIGS[name]
        m = copy.deepcopy(mm)
        set_execution_mode(m, mode)
        if channels_last:
            m = m.to(memory_format=torch.channels_last)
        models[name] = m
    return models


def data(args):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(args.batch_size, 3, args.img_size, args.img_size, generator=g)
    y = torch.randint(0, 1000, (args.batch_size, ), generator=g)
    return x, y


# ----------------------------------------------------------------------------- checks
def check_outputs(models: Dict[str, nn.Module], x: torch.Tensor, y: torch.Tensor) -> List[str]:
    """Outputs of every mmspike configuration; raises on a mismatch.

    * eval float64 logits (2x3x32x32) against the first model (upstream when given):
      bit-identical in the same memory format, within 1e-9 (relative) in channels-last (another
      summation order);
    * train- and eval-mode float32 logits of the first 2 images of the benchmark batch (at the
      benchmark's image size), bit-identical to the first model for the NCHW configurations and
      to the plain path converted to channels-last for the channels-last ones (whose stride-1
      convs run :mod:`mmspike.models.layers.conv_fwd`'s kernel where its self-check passes).
      (Against upstream in float32 only the same memory format can be compared: a spiking
      network turns a last-bit difference into a different spike somewhere in a 224x224 batch,
      and upstream's Conv1d token layers do not run the same channels-last kernels as 1x1
      Conv2d.)
    """
    from mmspike.models.layers import conv_fwd
    names = list(models)
    ref_name, lines = names[0], []
    before = set(conv_fwd.checked_geometries())
    x64 = reference.fixed_input((2, 3, 32, 32), torch.float64)  # float64 convs are slow
    x, y = x[:2], y[:2]  # train-mode BN statistics over 2 images: enough, and faster

    def run(m, dtype, train, inp):
        m = copy.deepcopy(m).to(dtype).train(train)
        with torch.no_grad():
            return m(inp)

    ref64 = run(models[ref_name], torch.float64, False, x64)
    modes = (True, False)  # train mode (batch statistics), eval mode (running statistics)
    ref32 = {t: run(models[ref_name], torch.float32, t, x) for t in modes}
    for n in names[1:]:
        cl = MMSPIKE_CONFIGS[n][1]
        out = run(models[n], torch.float64, False, x64)
        diff = (out - ref64).abs().max().item()
        if (not cl and not torch.equal(out, ref64)) or diff > 1e-9 * ref64.abs().max().item():
            raise RuntimeError(f'eval float64 logits of {n} differ from {ref_name}: {diff:.3g}')
        lines.append(f'check: eval float64 logits of {n} vs {ref_name}: '
                     + (f'max |diff| {diff:.3g} (channels-last)' if cl else 'bit-identical'))
        if cl:
            ref = copy.deepcopy(models['plain']).to(memory_format=torch.channels_last)
            ref_label, expected = 'plain+cl', {t: run(ref, torch.float32, t, x) for t in modes}
        else:
            ref_label, expected = ref_name, ref32
        for train in modes:
            out = run(models[n], torch.float32, train, x)
            mode = 'train' if train else 'eval'
            if not torch.equal(out, expected[train]):
                raise RuntimeError(f'{mode} float32 logits of {n} differ from {ref_label}: max '
                                   f'{(out - expected[train]).abs().max().item():.3g}')
            lines.append(f'check: {mode} float32 logits ({tuple(x.shape)}) of {n} '
                         f'bit-identical to {ref_label} (loss '
                         f'{F.cross_entropy(out, y).item():.6f})')
    new = {k: v for k, v in conv_fwd.checked_geometries().items() if k not in before}
    lines.append(f'check: the zero-skipping spike-conv kernel reproduced ATen\'s bits for '
                 f'{sum(new.values())} of {len(new)} new conv geometries ('
                 f'{sum(k[2][2:] != (1, 1) for k, v in new.items() if v)} of them kxk; its '
                 f'self-check: the rest run ATen)')
    return lines


# ----------------------------------------------------------------------------- timing
def train_step(model: nn.Module, x, y) -> Callable[[], None]:
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    return step


def inference(model: nn.Module, x) -> Callable[[], None]:
    model.eval()

    def run() -> None:
        with torch.no_grad():
            model(x)

    return run


def record_convs(fn: Callable[[], None]) -> list:
    """The convolutions of one call of ``fn``, with their arguments: ``aten.convolution`` and
    ``aten.convolution_backward`` seen under a dispatch mode (which the fast path does not treat
    as an observer: it still fuses), and the fast path's conv kernels
    (:func:`mmspike.models.layers.conv_grad.conv2d_param_grads` and
    :func:`mmspike.models.layers.conv_fwd.conv2d`, C calls no dispatch mode sees; recorded as
    themselves, the ATen ops they may run inside not again)."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from mmspike.models.layers import conv_fwd, conv_grad
    ops = {torch.ops.aten.convolution.default, torch.ops.aten.convolution_backward.default}
    calls, inside = [], []
    kernels = [(conv_grad, 'conv2d_param_grads'), (conv_fwd, 'conv2d')]
    originals = [getattr(m, name) for m, name in kernels]

    class Recorder(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if func in ops and not inside:
                calls.append((func, args, kwargs))
            return func(*args, **kwargs)

    def recorded(kernel):
        def run(*args, **kwargs):
            if not inside:
                calls.append((kernel, args, kwargs))
            inside.append(True)
            try:
                return kernel(*args, **kwargs)
            finally:
                inside.pop()
        return run

    for (m, name), kernel in zip(kernels, originals):
        setattr(m, name, recorded(kernel))  # instrumentation, undone below
    try:
        with Recorder():
            fn()
    finally:
        for (m, name), kernel in zip(kernels, originals):
            setattr(m, name, kernel)
    return calls


def replay(calls: list) -> Callable[[], None]:
    """Run the recorded convolutions again, the same kernels on the same tensors."""
    def run() -> None:
        with torch.no_grad():
            for func, args, kwargs in calls:
                func(*args, **kwargs)

    return run


def fold(model: nn.Module) -> nn.Module:
    from mmspike.models.layers import fuse_conv_bn
    model = copy.deepcopy(model).eval()
    fuse_conv_bn(model)
    return model


def profile(args, arch: str) -> None:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as tprofile
    models = build_models(args, arch, args.upstream is not None)
    x, y = data(args)
    model = models[args.profile]
    # built one after the other: each sets the model's mode (train / eval) for its own run
    for what, make in (('train step', lambda: train_step(model, x, y)),
                       ('inference', lambda: inference(model, x))):
        fn = make()
        fn()
        with tprofile(activities=[ProfilerActivity.CPU], record_shapes=False) as prof:
            fn()
        print(f'== {args.profile} {arch} {what}')
        print(prof.key_averages().table(sort_by='self_cpu_time_total', row_limit=30))


# ----------------------------------------------------------------------------- memory
def step_memory(step: Callable[[], None]) -> dict:
    """Resident-set rise of one call of ``step`` after a first untimed call (so gradients,
    optimizer state and the kernel library already exist: the rise is activations and
    temporaries)."""
    step()
    base = _rss_mib()
    valid = _reset_peak_rss()
    step()
    peak = _peak_rss_mib()
    return dict(base_mib=round(base, 1), peak_mib=round(peak, 1),
                step_mib=round(peak - base, 1), valid=valid)


def probe_memory(script: str, keys: List[str], argv: List[str]) -> Dict[str, dict]:
    """Run ``script --memory-probe KEY *argv`` for every key, each in its own process (with
    ``MALLOC_MMAP_THRESHOLD_=65536`` so freed tensors leave the resident set at once); the JSON
    line each prints, by the key's configuration name (after the ``:``)."""
    out = {}
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='65536')
    for key in keys:
        cmd = [sys.executable, osp.abspath(script), '--memory-probe', key, *argv]
        res = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if res.returncode:
            raise RuntimeError(f'memory probe {key} failed:\n{res.stderr[-3000:]}')
        out[key.split(':')[1]] = json.loads(res.stdout.strip().splitlines()[-1])
    return out


def memory_probe(args) -> None:
    """Child process: peak memory of one training step of one configuration (JSON on stdout)."""
    arch, name = args.memory_probe.split(':')
    models = build_models(args, arch, name == 'upstream')
    model = models[name]
    del models
    x, y = data(args)
    print(json.dumps(dict(name=name, **step_memory(train_step(model, x, y)))))


def bench_memory(args, arch: str, names: List[str]) -> Dict[str, dict]:
    argv = ['--batch-size', str(args.batch_size), '--img-size', str(args.img_size),
            '--threads', str(args.threads)]
    if args.upstream:
        argv += ['--upstream', args.upstream]
    return probe_memory(__file__, [f'{arch}:{n}' for n in names], argv)


# ----------------------------------------------------------------------------- main
def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.memory_probe:
        memory_probe(args)
        return
    with_upstream = args.upstream is not None
    skip = set(filter(None, args.skip.split(',')))
    setting = (f'batch {args.batch_size}, {args.img_size}x{args.img_size}, '
               f'{torch.get_num_threads()} threads, median of {args.repeats}')
    print(f'setting: {setting}; torch {torch.__version__}; upstream: '
          f'{args.upstream or "none (plain vs fast only)"}')
    if args.profile:
        for arch in args.arch:
            profile(args, arch)
        return
    tables = []
    for arch in args.arch:
        models = build_models(args, arch, with_upstream)
        names = list(models)
        x, y = data(args)
        nparams = {n: sum(p.numel() for p in m.parameters()) for n, m in models.items()}
        print(f'[{arch}] parameters: ' + ', '.join(f'{n} {v:,}' for n, v in nparams.items()))
        if 'check' not in skip:
            for line in check_outputs(models, x, y):
                print(f'[{arch}] {line}')
        rows: Dict[str, Dict[str, float]] = {}
        base = 'upstream' if with_upstream else 'plain'
        if 'train' not in skip:
            fns = {n: train_step(copy.deepcopy(m), x, y) for n, m in models.items()}
            timed(args, arch, 'train', fns, rows, base, args.conv_floor)
            del fns
        if 'infer' not in skip:
            fns = {n: inference(m, x) for n, m in models.items()}
            fns['fast+fold'] = inference(fold(models['fast']), x)
            fns['fast+cl+fold'] = inference(fold(models['fast+cl']), x)
            timed(args, arch, 'infer', fns, rows, base, args.conv_floor)
            del fns
        if 'memory' not in skip:
            mem = bench_memory(args, arch, names)
            for n, r in mem.items():
                print(f'[{arch}] memory {json.dumps(r)}')
                rows.setdefault(n, {})['mem'] = r['step_mib']
        tables.append((arch, rows))
        del models
    table_head(f'against {base} ({setting}; x: median over the rounds of {base}\'s seconds over '
               f'the configuration\'s in the same round; memory: VmHWM rise of one training '
               f'step, own subprocess)',
               f'{"arch":5s} {"config":12s} {"train img/s":>12s} {"x":>6s} {"infer img/s":>12s} '
               f'{"x":>6s} {"step MiB":>9s} {"x":>6s}')
    for arch, rows in tables:
        for n in rows:
            print(f'{arch:5s} {n:12s} {ratio_cell(rows, base, n, "train", (12, 2))} '
                  f'{ratio_cell(rows, base, n, "infer", (12, 2))} '
                  f'{ratio_cell(rows, base, n, "mem", (9, 0))}')
    if args.conv_floor:
        print_conv_floor(tables, base)


def timed(args, label: str, what: str, fns: Dict[str, Callable[[], None]],
          rows: Dict[str, Dict[str, float]], base: str, conv_floor: bool = False) -> None:
    """One interleaved run of ``fns`` (with ``conv_floor`` also each one's convolutions alone).

    Into ``rows[name]``: ``what`` (median img/s), ``what_s`` (median seconds), ``what_x`` (the
    speed against ``base``: the median over the rounds of ``base``'s seconds over this one's in
    the same round; the pairing cancels machine speed that drifts over more than a round, which
    on a shared 2-core VM moves single runs by +-30%) and ``what_convs_s``.
    """
    if conv_floor:
        for n in list(fns):
            fns[n]()  # warm: lazily built state (optimizer buffers) exists before recording
            fns[f'{n}:convs'] = replay(record_convs(fns[n]))
    t = interleaved(fns, args.repeats, args.warmup, 'cpu')
    for n, v in t.items():
        name, _, part = n.partition(':')
        r = rows.setdefault(name, {})
        if part:
            r[f'{what}_convs_s'] = statistics.median(v)
        else:
            r[what] = args.batch_size / statistics.median(v)
            r[f'{what}_s'] = statistics.median(v)
            if base in t:
                r[f'{what}_x'] = statistics.median(b / s for b, s in zip(t[base], v))
        print(f'[{label}] {what} {n:15s} s {[round(s, 3) for s in v]}')


def ratio_cell(rows: Dict[str, Dict[str, float]], base: str, n: str, key: str, fmt) -> str:
    """``value ratio`` of ``rows[n][key]`` for the tables: the paired ratio (``key_x``) where
    :func:`timed` measured one, else the ratio of the values (memory)."""
    v, b = rows.get(n, {}).get(key), rows.get(base, {}).get(key)
    x = rows.get(n, {}).get(f'{key}_x', None if not b or v is None else v / b)
    if v is None:
        return f'{"-":>{fmt[0]}s} {"-":>6s}'
    return f'{v:{fmt[0]}.{fmt[1]}f} ' + (f'{x:5.2f}x' if x is not None else f'{"-":>6s}')


def table_head(title: str, head: str) -> None:
    print()
    print(title)
    print(head)
    print('-' * len(head))


def print_conv_floor(tables, base: str) -> None:
    """What the convolutions alone take, and the most each configuration could reach against
    ``base`` if everything but its convolutions took no time."""
    table_head(f'convolutions alone (aten.convolution / convolution_backward calls of one step, '
               f'recorded, replayed in the same run); bound: {base} seconds / these seconds',
               f'{"arch":5s} {"config":12s} {"train s":>8s} {"convs s":>8s} {"share":>6s} '
               f'{"bound":>6s} {"infer s":>8s} {"convs s":>8s} {"share":>6s} {"bound":>6s}')
    for arch, rows in tables:
        for n, r in rows.items():
            cells = []
            for what in ('train', 'infer'):
                total, convs = r.get(f'{what}_s'), r.get(f'{what}_convs_s')
                ref = rows.get(base, {}).get(f'{what}_s')
                if total is None or convs is None:
                    cells.append(f'{"-":>8s} {"-":>8s} {"-":>6s} {"-":>6s}')
                    continue
                bound = f'{ref / convs:5.2f}x' if ref else f'{"-":>6s}'
                cells.append(f'{total:8.3f} {convs:8.3f} {convs / total:6.0%} {bound}')
            print(f'{arch:5s} {n:12s} {cells[0]} {cells[1]}')


if __name__ == '__main__':
    main()
