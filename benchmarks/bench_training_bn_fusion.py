"""What fusing the training-mode BatchNorm into the next neuron saves: the fast+cl training step
of E-SpikeFormer with and without it, interleaved in one process (the same model object, the
fusion switched off for the "off" runs by replacing ``fused._training_bn`` with a function that
declines, restored afterwards), median seconds and the per-round ratio.

The step is ``bench_vs_upstream.train_step`` (batch 8, 224², SGD). Both runs compute the same
bits (``tests/test_models/test_layers/test_bn_fire_train_fusion.py``)::

    PYTHONPATH=$PWD python benchmarks/bench_training_bn_fusion.py --arch 19m --repeats 7
"""
import argparse
import os.path as osp
import statistics
import sys
import time

import torch

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import bench_vs_upstream as bench  # noqa: E402
from mmspike.models.layers import fused  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--arch', default='19m', choices=sorted(bench.ARCHS))
    parser.add_argument('--repeats', type=int, default=7)
    parser.add_argument('--threads', type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    bargs = bench.parse_args(['--arch', args.arch, '--threads', str(args.threads)])
    model = bench.build_models(bargs, args.arch, False)['fast+cl']
    x, y = bench.data(bargs)
    step = bench.train_step(model, x, y)
    fusing = fused._training_bn
    modes = {'on': fusing, 'off': lambda *a, **k: None}
    times = {'on': [], 'off': []}
    try:
        for name in ('on', 'off'):  # warm-up (the kernels' first-use probes)
            fused._training_bn = modes[name]
            step()
        for r in range(args.repeats):
            for name in (('on', 'off') if r % 2 == 0 else ('off', 'on')):
                fused._training_bn = modes[name]
                t = time.perf_counter()
                step()
                times[name].append(time.perf_counter() - t)
    finally:
        fused._training_bn = fusing
    print(f'{args.arch} fast+cl training step (batch 8, 224², {args.threads} threads), '
          f'median of {args.repeats}:')
    for name, ts in times.items():
        print(f'  fused training BN {name:3s}: {statistics.median(ts):.3f} s  '
              f'{[round(t, 3) for t in ts]}')
    ratios = [a / b for a, b in zip(times['off'], times['on'])]
    print(f'  off / on per round: {[round(q, 3) for q in ratios]}, median '
          f'{statistics.median(ratios):.3f}')


if __name__ == '__main__':
    main()
