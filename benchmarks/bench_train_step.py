"""E-SpikeFormer training step and inference: mmspike's fast path against the plain path.

Both paths run the same model object with the same weights; only the execution mode differs
(:func:`mmspike.models.set_execution_mode`, set once on each model copy): the plain path is the
upstream-style computation (clamp/round neuron keeping its float input, ``(Q K^T) V`` attention, no fusion),
the fast path fuses neurons (C kernel on the CPU, Triton on CUDA), keeps spikes as bytes for
backward and picks the cheaper attention order. Their outputs and gradients are bit-identical
(``tests/test_models/test_*/test_fast_plain*.py``) as long as both use the same memory format.
The channels-last rows change the memory format (and with it the conv kernels' summation order,
so the bits, not the function); they are reported separately.

Measured, one summary line per figure at the end (``SUMMARY ...``):

* training step (forward + backward + AdamW step) img/s of every configuration, interleaved
  (each repeat runs every configuration once, in rotating order), median of ``--repeats``;
* peak memory of one training step per configuration, each in its own subprocess: the rise of
  the resident-set high-water mark (``VmHWM``, reset just before the step through
  ``/proc/self/clear_refs``; ``ru_maxrss`` cannot be used as it inherits the parent's resident
  set) over the resident set just before the step, when the model, its gradients and the
  optimizer state already exist (so the rise is activations + temporaries). The probe runs with
  ``MALLOC_MMAP_THRESHOLD_=65536`` so freed tensors leave the resident set at once; on CUDA it
  uses ``torch.cuda.max_memory_allocated`` instead;
* inference img/s (``torch.no_grad``, eval mode), also with BN folded into the convs
  (:func:`mmspike.models.layers.fuse_conv_bn`);
* neuron forward + backward throughput (GB/s of the 18 bytes per element a fused fp32 firing
  with a one-byte mask must move) of the naive autograd composition, the plain path, the fast
  path on torch ops and the fast path's kernel, against a tensor copy.

Examples::

    python benchmarks/bench_train_step.py                      # 10M, batch 8, 224x224
    python benchmarks/bench_train_step.py --batch-size 2 --img-size 128 --repeats 3 --threads 1
"""
import argparse
import copy
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_backbone import build_classifier  # noqa: E402

from mmspike.models.execution import execution_mode, set_execution_mode  # noqa: E402
from mmspike.models.layers import fuse_conv_bn  # noqa: E402
from mmspike.models.neurons import MultiSpike, kernels, round_half_up  # noqa: E402

# (name, execution mode, channels-last, BN folded (inference only))
TRAIN_CONFIGS = [('plain', 'plain', False), ('fast', 'fast', False),
                 ('plain+cl', 'plain', True), ('fast+cl', 'fast', True)]
INFER_CONFIGS = [('plain', 'plain', False, False), ('fast', 'fast', False, False),
                 ('fast+fold', 'fast', False, True), ('plain+cl', 'plain', True, False),
                 ('fast+cl', 'fast', True, False), ('fast+cl+fold', 'fast', True, True)]
MEMORY_CONFIGS = [('plain', 'plain', False), ('fast', 'fast', False), ('fast+cl', 'fast', True)]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--arch', default='10m', help='E-SpikeFormer arch')
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--img-size', type=int, default=224)
    parser.add_argument('--repeats', type=int, default=5, help='timed runs per configuration')
    parser.add_argument('--warmup', type=int, default=1, help='untimed runs per configuration')
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--max-spikes', type=int, default=4, help='D of "1xD"')
    parser.add_argument('--round-mode', default='half_up', choices=['half_up', 'half_even'],
                        help="neuron rounding ('half_even' is upstream's torch.round)")
    parser.add_argument('--neuron-numel', type=int, default=4_000_000,
                        help='elements of the neuron throughput test')
    parser.add_argument('--skip', default='', help='comma list of train,memory,infer,neuron')
    parser.add_argument('--memory-probe', default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def build(args: argparse.Namespace) -> nn.Module:
    torch.manual_seed(0)
    model = build_classifier('e-spikeformer', args.arch, args.max_spikes, 1)
    if args.round_mode != 'half_up':
        for m in model.modules():
            if isinstance(m, MultiSpike):
                m.round_mode = args.round_mode
    return model.to(args.device)


def sync(device: str) -> None:
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def interleaved(fns: Dict[str, Callable[[], None]], repeats: int, warmup: int,
                device: str) -> Dict[str, List[float]]:
    """Seconds per call of every function; each repeat runs all of them once, the order
    rotating between repeats so drifting machine load hits all alike."""
    names = list(fns)
    for _ in range(warmup):
        for n in names:
            fns[n]()
    sync(device)
    times: Dict[str, List[float]] = {n: [] for n in names}
    for r in range(repeats):
        for n in names[r % len(names):] + names[:r % len(names)]:
            t0 = time.perf_counter()
            fns[n]()
            sync(device)
            times[n].append(time.perf_counter() - t0)
    return times


def data(args: argparse.Namespace):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(args.batch_size, 3, args.img_size, args.img_size, generator=g)
    y = torch.randint(0, 1000, (args.batch_size, ), generator=g)
    return x.to(args.device), y.to(args.device)


def train_step_fn(model: nn.Module, opt: torch.optim.Optimizer, x, y,
                  mode: str) -> Callable[[], None]:

    set_execution_mode(model, mode)  # per-model state: set once, outside the timed step

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    return step


def bench_train(args) -> Dict[str, List[float]]:
    base = build(args).train()
    x, y = data(args)
    fns = {}
    for name, mode, cl in TRAIN_CONFIGS:
        model = copy.deepcopy(base)
        if cl:
            model = model.to(memory_format=torch.channels_last)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        fns[name] = train_step_fn(model, opt, x, y, mode)
    return interleaved(fns, args.repeats, args.warmup, args.device)


def bench_infer(args) -> Dict[str, List[float]]:
    base = build(args)
    with torch.no_grad():  # BN statistics that are not the identity
        base.train()(torch.randn(2, 3, 64, 64, device=args.device))
    base.eval()
    x, _ = data(args)
    fns = {}
    for name, mode, cl, fold in INFER_CONFIGS:
        model = copy.deepcopy(base)
        if fold:
            fuse_conv_bn(model)
        if cl:
            model = model.to(memory_format=torch.channels_last)
        set_execution_mode(model, mode)

        def run(model=model) -> None:
            with torch.no_grad():
                model(x)

        fns[name] = run
    return interleaved(fns, args.repeats, args.warmup, args.device)


def _rss_mib() -> float:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20


def _reset_peak_rss() -> bool:
    """Reset the kernel's resident-set high-water mark (Linux >= 4.0). Needed because
    ``ru_maxrss`` also counts the parent's resident set at fork, which survives exec."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def _peak_rss_mib() -> float:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_probe(args) -> None:
    """Child process: peak memory of one training step of one configuration (JSON on stdout)."""
    name = args.memory_probe
    _, mode, cl = next(c for c in MEMORY_CONFIGS if c[0] == name)
    model = build(args).train()
    if cl:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x, y = data(args)
    for p in model.parameters():  # gradients and optimizer state exist before the step
        p.grad = torch.zeros_like(p)
    opt.step()
    with torch.no_grad(), execution_mode(model, mode):
        model(x[:1])  # loads the kernel library
    step = train_step_fn(model, opt, x, y, mode)
    cuda = args.device.startswith('cuda')
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated() / 2**20
        valid = True
    else:
        base = _rss_mib()
        valid = _reset_peak_rss()  # else the high-water mark may predate the step
    step()
    if cuda:
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = _peak_rss_mib()
    print(json.dumps(dict(name=name, base_mib=round(base, 1), peak_mib=round(peak, 1),
                          step_mib=round(peak - base, 1), valid=valid)))


def bench_memory(args) -> Dict[str, dict]:
    results = {}
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='65536')
    for name, _, _ in MEMORY_CONFIGS:
        cmd = [sys.executable, os.path.abspath(__file__), '--memory-probe', name,
               '--arch', args.arch, '--batch-size', str(args.batch_size), '--img-size',
               str(args.img_size), '--device', args.device, '--max-spikes',
               str(args.max_spikes), '--round-mode', args.round_mode]
        if args.threads:
            cmd += ['--threads', str(args.threads)]
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
        results[name] = json.loads(out.strip().splitlines()[-1])
    return results


def bench_neuron(args) -> Dict[str, float]:
    """Median seconds of forward + backward of each firing implementation on fp32."""
    n, D, norm = args.neuron_numel, 4, 4.0
    g = torch.Generator().manual_seed(2)
    u0 = (torch.randn(1, n, generator=g) * 3).to(args.device)
    grad = torch.randn(1, n, generator=g).to(args.device)

    def naive(u):  # what one writes with autograd only: clamp saves u, STE round
        c = u.clamp(0, D)
        return (c + (round_half_up(c) - c).detach()) / norm

    def path(mode, backend='auto'):
        neuron = MultiSpike(max_spikes=D, execution_mode=mode)
        neuron.kernel_backend = backend  # per-module state, set once outside the timed call
        return neuron

    impls = {'naive autograd composition': naive, 'plain path': path('plain'),
             'fast path, torch ops': path('fast', 'torch'),
             f'fast path, {kernels.fire_backend(u0)} kernel': path('fast')}
    fns = {}
    for name, f in impls.items():

        def run(f=f) -> None:
            u = u0.detach().requires_grad_()
            f(u).backward(grad)

        fns[name] = run
    dst = torch.empty_like(u0)
    fns['copy (preallocated)'] = lambda: dst.copy_(u0)
    fns['copy (clone)'] = lambda: u0.clone()
    times = interleaved(fns, max(args.repeats, 5) * 2, 1, args.device)
    return {k: statistics.median(v) for k, v in times.items()}


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_probe:
        memory_probe(args)
        return
    skip = set(filter(None, args.skip.split(',')))
    setting = (f'E-SpikeFormer {args.arch}, batch {args.batch_size}, {args.img_size}x'
               f'{args.img_size}, D={args.max_spikes}, round {args.round_mode}, '
               f'{args.device}, {torch.get_num_threads()} threads, median of {args.repeats}')
    print('setting:', setting)
    print('fire backend (fp32):', kernels.fire_backend(torch.empty(0, device=args.device)))
    summary = []
    bs = args.batch_size

    def ratio_line(what, t, a, b, target):
        ra, rb = bs / statistics.median(t[a]), bs / statistics.median(t[b])
        summary.append(f'SUMMARY {what}: {a} {ra:.2f} img/s, {b} {rb:.2f} img/s, '
                       f'ratio {ra / rb:.2f}x (target {target}) [{setting}]')

    if 'train' not in skip:
        t = bench_train(args)
        for name, v in t.items():
            print(f'train {name:10s} median {statistics.median(v):.3f} s  min {min(v):.3f} s  '
                  f'all {[round(s, 3) for s in v]}')
        ratio_line('train img/s', t, 'fast', 'plain', '>= 1.5x')
        ratio_line('train img/s, both channels-last', t, 'fast+cl', 'plain+cl', '>= 1.5x')
        ratio_line('train img/s, lean step vs upstream way', t, 'fast+cl', 'plain', '>= 1.5x')
    if 'memory' not in skip:
        mem = bench_memory(args)
        for name, r in mem.items():
            print('memory', json.dumps(r))
        key = 'step_mib'
        for fast in ('fast', 'fast+cl'):
            r = mem[fast][key] / mem['plain'][key]
            summary.append(
                f'SUMMARY train peak memory (rise over model + grads + optimizer state): '
                f'{fast} {mem[fast][key]:.0f} MiB, plain {mem["plain"][key]:.0f} MiB, ratio '
                f'{r:.2f}x (target <= 0.6x); whole process {mem[fast]["peak_mib"]:.0f} vs '
                f'{mem["plain"]["peak_mib"]:.0f} MiB [{setting}]')
    if 'infer' not in skip:
        t = bench_infer(args)
        for name, v in t.items():
            print(f'infer {name:13s} median {statistics.median(v):.3f} s  min {min(v):.3f} s')
        ratio_line('inference img/s', t, 'fast', 'plain', '>= 1.5x')
        ratio_line('inference img/s, BN folded', t, 'fast+fold', 'plain', '>= 1.5x')
        ratio_line('inference img/s, BN folded + channels-last', t, 'fast+cl+fold', 'plain',
                   '>= 1.5x')
    if 'neuron' not in skip:
        t = bench_neuron(args)
        n = args.neuron_numel
        print(f'neuron forward+backward, {n} fp32 elements ({n * 4 / 2**20:.0f} MiB):')
        print(f'  {"implementation":34s} {"ms":>8s} {"GB/s":>7s}')
        for name, s in t.items():
            nbytes = 8 * n if name.startswith('copy') else 18 * n
            print(f'  {name:34s} {s * 1e3:8.2f} {nbytes / s / 1e9:7.2f}')
        fast = next(k for k in t if k.endswith('kernel'))
        gbs = 18 * n / t[fast] / 1e9
        copy_gbs = 8 * n / t['copy (clone)'] / 1e9
        summary.append(
            f'SUMMARY neuron fwd+bwd: {fast} {gbs:.2f} GB/s, '
            f'{t["naive autograd composition"] / t[fast]:.2f}x the naive composition '
            f'(target >= 3x), {t["plain path"] / t[fast]:.2f}x the plain path; '
            f'{gbs / copy_gbs * 100:.0f}% of a tensor copy with allocation ({copy_gbs:.2f} GB/s),'
            f' {gbs / (8 * n / t["copy (preallocated)"] / 1e9) * 100:.0f}% of a preallocated '
            f'copy [{n} elements, {args.device}, {torch.get_num_threads()} threads]')
    print()
    print('\n'.join(summary))


if __name__ == '__main__':
    main()
