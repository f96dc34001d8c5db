"""Train a model from an mmpretrain, mmdet or mmseg config that uses mmspike modules.

    python tools/train.py CONFIG [--work-dir DIR] [--amp] [--resume [CKPT]] [--cfg-options k=v ...]
"""
import argparse

import torch

from mmspike.engine import SpikeRunner, apply_patches
from mmspike.engine.runner_utils import (add_runner_args, load_runner_config,
                                         setup_cpu_distributed)


def parse_args():
    parser = argparse.ArgumentParser(description='Train a (spiking) model with MMEngine')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from the given checkpoint, or from the newest readable one '
                        'in the work dir when no path is given (unreadable ones are skipped, '
                        'with a warning saying why)')
    add_runner_args(parser)
    return parser.parse_args()


def main():
    apply_patches()  # explicit third-party fixes (importing mmspike changes nothing)
    args = parse_args()
    cfg = load_runner_config(args)
    if args.amp:
        if not torch.cuda.is_available():
            raise SystemExit('--amp needs a GPU: MMEngine\'s AmpOptimWrapper does not train on CPU')
        opt_type = cfg.optim_wrapper.get('type', 'OptimWrapper')
        assert opt_type in ('OptimWrapper', 'AmpOptimWrapper'), \
            f'--amp needs an OptimWrapper or AmpOptimWrapper, the config has {opt_type}'
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    setup_cpu_distributed(cfg)
    runner = SpikeRunner.from_cfg(cfg)
    runner.train()


if __name__ == '__main__':
    main()
