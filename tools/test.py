"""Evaluate a checkpoint on the test set of an mmpretrain, mmdet or mmseg config.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE] [--cfg-options k=v ...]

Checkpoints are loaded with ``torch.load(weights_only=True)``: a file that needs arbitrary code to
unpickle is refused with an error naming the offending global.
"""
import argparse
import os.path as osp

from mmspike.engine import SpikeRunner, apply_patches
from mmspike.engine.runner_utils import (add_runner_args, load_runner_config,
                                         setup_cpu_distributed)


def parse_args():
    parser = argparse.ArgumentParser(description='Test a (spiking) model with MMEngine')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', help='dump the metrics to this .json/.pkl file')
    add_runner_args(parser)
    return parser.parse_args()


def main():
    apply_patches()  # explicit third-party fixes (importing mmspike changes nothing)
    args = parse_args()
    if not osp.isfile(args.checkpoint):
        raise SystemExit(f'checkpoint not found: {args.checkpoint}')
    cfg = load_runner_config(args)
    cfg.load_from = args.checkpoint
    if args.amp:
        cfg.test_cfg = dict(cfg.get('test_cfg') or {}, fp16=True)
    setup_cpu_distributed(cfg)
    runner = SpikeRunner.from_cfg(cfg)
    metrics = runner.test()
    if args.out:
        from mmengine.fileio import dump
        dump(metrics, args.out)
    print(f'metrics: {metrics}')


if __name__ == '__main__':
    main()
