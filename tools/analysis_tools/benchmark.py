"""Inference and training throughput, latency and peak memory of any config, on CPU or GPU.

    python tools/analysis_tools/benchmark.py CONFIG [--device cpu|cuda] [--batch-size 8]
        [--input-shape 3,224,224] [--warmup 2] [--iters 10] [--phases infer,train] [--out FILE]

Random images of ``--input-shape`` go through the model's data preprocessor once; the timed part
is the model itself (``mode='tensor'``; detectors and segmentors get dummy meta information).
Training runs forward, backward and an optimizer step with the config's ``optim_wrapper``; the loss
is a surrogate (the sum of the output means), so the cost is the network's, not the loss's.

Memory: on CUDA the peak allocated by PyTorch in each phase (``torch.cuda.max_memory_allocated``);
on CPU the peak resident set size of the process (``ru_maxrss``, which only grows: the training
figure includes everything before it) and its growth during the phase.
"""
import argparse
import copy
import json
import resource
import statistics
import sys
import time

import torch
from mmengine.config import DictAction

from mmspike.analysis.config_utils import (build_model, flatten_outputs, forward_tensor,
                                           load_config, parse_shape, random_batches)

PHASES = ('infer', 'train')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Benchmark a model: throughput, latency, memory')
    parser.add_argument('config', help='config file')
    parser.add_argument('--checkpoint', default=None, help='checkpoint to load (optional)')
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'], help='device')
    parser.add_argument('--batch-size', type=int, default=8, help='images per batch (default 8)')
    parser.add_argument('--input-shape', default='3,224,224', metavar='C,H,W',
                        help='input image shape (default 3,224,224)')
    parser.add_argument('--warmup', type=int, default=2, help='untimed iterations (default 2)')
    parser.add_argument('--iters', type=int, default=10, help='timed iterations (default 10)')
    parser.add_argument('--phases', default='infer,train',
                        help='comma-separated phases among infer,train (default both)')
    parser.add_argument('--amp', action='store_true', help='autocast (fp16 on cuda, bf16 on cpu)')
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    parser.add_argument('--out', default=None, help='write the results to this json file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings')
    args = parser.parse_args(argv)
    args.phases = [p.strip() for p in args.phases.split(',') if p.strip()]
    bad = [p for p in args.phases if p not in PHASES]
    if bad or not args.phases:
        parser.error(f'--phases must be a comma-separated subset of {PHASES}, got {bad}')
    if args.batch_size < 1 or args.iters < 1 or args.warmup < 0:
        parser.error('--batch-size and --iters must be >= 1, --warmup >= 0')
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda requested but CUDA is not available')
    try:
        args.input_shape = parse_shape(args.input_shape)
    except ValueError as e:
        parser.error(str(e))
    return args


def _rss_mb() -> float:
    """Current resident set size (Linux /proc; falls back to the peak elsewhere)."""
    try:
        with open('/proc/self/statm') as f:
            pages = int(f.read().split()[1])
        return pages * resource.getpagesize() / 2**20
    except OSError:  # pragma: no cover
        return _peak_rss_mb()


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == 'darwin' else peak / 2**10  # bytes on macOS, KiB else


class _Timer:

    def __init__(self, device: str) -> None:
        self.device = device
        self.times = []

    def __enter__(self):
        if self.device == 'cuda':
            torch.cuda.synchronize()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if self.device == 'cuda':
            torch.cuda.synchronize()
        self.times.append(time.perf_counter() - self.t0)


def _autocast(args):
    if not args.amp:
        return torch.autocast(args.device, enabled=False)
    return torch.autocast(args.device, dtype=torch.float16 if args.device == 'cuda'
                          else torch.bfloat16)


def _summary(phase: str, times, batch_size: int, device: str, rss_before: float) -> dict:
    mean = statistics.mean(times)
    res = dict(phase=phase, batch_size=batch_size, iters=len(times),
               throughput_img_s=batch_size / mean, latency_ms_mean=1e3 * mean,
               latency_ms_median=1e3 * statistics.median(times),
               latency_ms_min=1e3 * min(times), latency_ms_max=1e3 * max(times))
    if device == 'cuda':
        res['peak_memory_mb'] = torch.cuda.max_memory_allocated() / 2**20
    else:
        res['peak_rss_mb'] = _peak_rss_mb()
        res['rss_growth_mb'] = max(0.0, res['peak_rss_mb'] - rss_before)
    return res


def benchmark_inference(model, inputs, samples, args) -> dict:
    model.eval()
    rss_before = _rss_mb()
    if args.device == 'cuda':
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    timer = _Timer(args.device)
    with torch.no_grad(), _autocast(args):
        for i in range(args.warmup + args.iters):
            if i < args.warmup:
                forward_tensor(model, inputs, samples)
                continue
            with timer:
                forward_tensor(model, inputs, samples)
    return _summary('infer', timer.times, inputs.shape[0], args.device, rss_before)


def benchmark_training(model, inputs, samples, cfg, args) -> dict:
    from mmengine.optim import build_optim_wrapper
    model.train()
    optim_cfg = copy.deepcopy(cfg.get('optim_wrapper') or
                              dict(optimizer=dict(type='SGD', lr=1e-3, momentum=0.9)))
    optim_cfg.pop('accumulative_counts', None)
    optim_wrapper = build_optim_wrapper(model, optim_cfg)
    rss_before = _rss_mb()
    if args.device == 'cuda':
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    timer = _Timer(args.device)

    def step():
        with _autocast(args):
            outs = flatten_outputs(forward_tensor(model, inputs, samples))
            loss = sum(o.float().mean() for o in outs if o.is_floating_point())
        optim_wrapper.update_params(loss)

    for i in range(args.warmup + args.iters):
        if i < args.warmup:
            step()
            continue
        with timer:
            step()
    model.eval()
    return _summary('train', timer.times, inputs.shape[0], args.device, rss_before)


def format_results(results, device: str) -> str:
    mem_key = 'peak_memory_mb' if device == 'cuda' else 'peak_rss_mb'
    mem_name = 'peak alloc MiB' if device == 'cuda' else 'peak RSS MiB'
    lines = [f"{'phase':<6} {'batch':>5} {'img/s':>9} {'ms/batch':>9} {'median':>9} "
             f'{mem_name:>15}']
    for r in results:
        lines.append(f"{r['phase']:<6} {r['batch_size']:>5} {r['throughput_img_s']:>9.2f} "
                     f"{r['latency_ms_mean']:>9.2f} {r['latency_ms_median']:>9.2f} "
                     f'{r[mem_key]:>15.1f}')
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(args.config, args.cfg_options)
    torch.manual_seed(0)
    model = build_model(cfg, args.checkpoint, args.device)
    inputs, samples, _ = next(random_batches(model, args.input_shape, args.batch_size,
                                             args.batch_size, device=args.device))
    results = []
    for phase in args.phases:
        if phase == 'infer':
            results.append(benchmark_inference(model, inputs, samples, args))
        else:
            results.append(benchmark_training(model, inputs, samples, cfg, args))
    params = sum(p.numel() for p in model.parameters())
    device_name = (torch.cuda.get_device_name() if args.device == 'cuda'
                   else f'cpu ({torch.get_num_threads()} threads)')
    print(f'{args.config}: {params / 1e6:.2f}M params, input {args.input_shape}, {device_name}'
          f"{', amp' if args.amp else ''}")
    print(format_results(results, args.device))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(dict(config=args.config, device=device_name, params=params,
                           input_shape=list(args.input_shape), amp=args.amp,
                           results=results), f, indent=2)
    return results


if __name__ == '__main__':
    main()
