"""Spike Sparse Convolution: the dense reference vs the spconv backend, forward + backward time.

Masks are random 16x16-pixel patch masks (the spike-MAE setting) at 50% and 75% masking. Two
levels are timed:

* ``layers``: single SSC convs of E-SpikeFormer's CNN stages at their resolutions for a 224x224
  input (stem 7x7 s2, channel-MLP 3x3, depthwise 7x7 of the SepConv, 3x3 s2 downsampling);
* ``encoder``: the SSC-converted CNN stages of an E-SpikeFormer (``--arch``) plus the
  downsampling conv in front of its Transformer.

Example (CPU, 2 threads)::

    python benchmarks/bench_ssc.py --threads 2 --batch-size 4 --arch 10m

On a GPU (``--device cuda``) the spconv backend needs a CUDA build of spconv (``spconv-cu12x``).
Prints one JSON line per measurement (median time of ``--iters`` forward + backward steps).
"""
import argparse
import copy
import json
import statistics
import time

import torch

from mmspike.models.backbones import ESpikeFormer
from mmspike.models.layers.ssc import SparseConv2d, spconv_available
from mmspike.classification.selfsup import convert_espikeformer_to_ssc, patch_mask_to_pixels, \
    random_patch_mask

# (name, in, out, kernel, stride, groups, input size) for 224x224 images, 10M-like widths.
LAYERS = [
    ('stem7x7s2', 3, 24, 7, 2, 1, 224),
    ('mlp3x3@56', 48, 192, 3, 1, 1, 56),
    ('dw7x7@56', 96, 96, 7, 1, 96, 56),
    ('down3x3s2@56', 48, 96, 3, 2, 1, 56),
    ('mlp3x3@28', 96, 384, 3, 1, 1, 28),
]


def sync(device: str) -> None:
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def timed(fn, iters: int, warmup: int, device: str) -> float:
    """Median seconds per call (the median resists other processes sharing the CPU)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_layers(args, ratio: float) -> None:
    grid = 224 // 16
    mask, _, _ = random_patch_mask(args.batch_size, (grid, grid), ratio)
    active224 = patch_mask_to_pixels(mask, (grid, grid), 16).to(args.device)
    for name, cin, cout, k, s, g, size in LAYERS:
        step = 224 // size
        active = active224[:, ::step, ::step]
        x = torch.randn(args.batch_size, cin, size, size, device=args.device) * active[:, None]
        times = {}
        for backend in ('dense', 'spconv'):
            conv = SparseConv2d(cin, cout, k, s, groups=g, backend=backend).to(args.device)

            def step_fn():
                xi = x.detach().requires_grad_()
                conv(xi, active).sum().backward()

            times[backend] = timed(step_fn, args.iters, args.warmup, args.device)
        print(json.dumps(dict(level='layer', layer=name, mask_ratio=ratio, device=args.device,
                              batch=args.batch_size,
                              dense_ms=round(times['dense'] * 1e3, 2),
                              spconv_ms=round(times['spconv'] * 1e3, 2),
                              spconv_speedup=round(times['dense'] / times['spconv'], 2))),
              flush=True)


def bench_encoder(args, ratio: float) -> None:
    torch.manual_seed(0)
    base = ESpikeFormer(arch=args.arch, out_indices=(2, ))
    # CNN stages + the downsampling conv into the Transformer (what SSC converts).
    keep = base.conv_stages
    base.stages = base.stages[:keep + 1]
    base.stages[keep] = base.stages[keep][:1]
    base.out_indices = (keep, )
    grid = args.size // 16
    mask, _, _ = random_patch_mask(args.batch_size, (grid, grid), ratio)
    active = patch_mask_to_pixels(mask, (grid, grid), 16).to(args.device)
    x = torch.randn(args.batch_size, 3, args.size, args.size, device=args.device)
    times = {}
    for backend in ('dense', 'spconv'):
        model = copy.deepcopy(base).to(args.device)
        sites = convert_espikeformer_to_ssc(model, backend=backend)

        def step_fn():
            with sites.use(active):
                model(x)[-1].sum().backward()

        times[backend] = timed(step_fn, args.iters, args.warmup, args.device)
    print(json.dumps(dict(level='encoder', arch=args.arch, size=args.size, mask_ratio=ratio,
                          device=args.device, batch=args.batch_size,
                          dense_ms=round(times['dense'] * 1e3, 1),
                          spconv_ms=round(times['spconv'] * 1e3, 1),
                          spconv_speedup=round(times['dense'] / times['spconv'], 2))),
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--levels', nargs='+', default=['layers', 'encoder'],
                        choices=['layers', 'encoder'])
    parser.add_argument('--ratios', nargs='+', type=float, default=[0.5, 0.75])
    parser.add_argument('--arch', default='10m', help='E-SpikeFormer arch of the encoder level')
    parser.add_argument('--size', type=int, default=224, help='image size of the encoder level')
    parser.add_argument('--batch-size', type=int, default=4)
    parser.add_argument('--iters', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args()
    if not spconv_available():
        raise SystemExit('spconv is not installed: nothing to compare the dense backend with')
    if args.threads:
        torch.set_num_threads(args.threads)
    print(json.dumps(dict(threads=torch.get_num_threads(), torch=torch.__version__)), flush=True)
    for ratio in args.ratios:
        if 'layers' in args.levels:
            bench_layers(args, ratio)
        if 'encoder' in args.levels:
            bench_encoder(args, ratio)


if __name__ == '__main__':
    main()
