"""Check spike-driven inference: integer mode vs. binary IF expansion over D virtual steps.

    python tools/analysis_tools/spike_driven_check.py CONFIG [CHECKPOINT] [--num-images 4]
    python tools/analysis_tools/spike_driven_check.py CONFIG --random-input 3,224,224

Runs the model twice on the same inputs: with integer neurons (as trained) and with every integer
neuron switched to spike-driven mode, where it emits its count as D binary spikes of an IF
soft-reset neuron. Reports the maximum output difference (must be 0) and, per neuron, the binary
spikes actually emitted next to the integer spike sums the SOP report counts (must be equal).
Exits with status 1 when the check fails.
"""
import argparse
import json
import sys

import torch

from mmengine.config import DictAction

from mmspike.analysis.config_utils import (DataUnavailableError, batch_source, build_model,
                                           calibrate_bn, check_tool_args, forward_tensor,
                                           load_config)
from mmspike.analysis.spike_driven import check_spike_driven


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Integer vs. spike-driven inference check')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', nargs='?', default=None,
                        help='checkpoint (weights-only loading); random weights if omitted')
    parser.add_argument('--num-images', type=int, default=4, help='images to run (default 4)')
    parser.add_argument('--batch-size', type=int, default=None, help='batch size')
    parser.add_argument('--random-input', metavar='C,H,W', default=None,
                        help='use random images of this shape instead of the test dataloader')
    parser.add_argument('--split', default='test', choices=['test', 'val'])
    parser.add_argument('--calibrate-bn', type=int, default=0, metavar='N',
                        help='first re-estimate BatchNorm statistics on N other images, so that '
                        'untrained weights fire (default 0: off)')
    parser.add_argument('--atol', type=float, default=0.0,
                        help='largest output difference that passes (default 0)')
    parser.add_argument('--per-neuron', action='store_true', help='print every neuron')
    parser.add_argument('--out', default=None, help='write the result to this json file')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of random weights and inputs')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings')
    args = parser.parse_args(argv)
    check_tool_args(parser, args)
    return args


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    torch.manual_seed(args.seed)  # reproducible random weights when no checkpoint is given
    model = build_model(cfg, args.checkpoint, args.device)

    batches = batch_source(cfg, model, args, default_batch_size=4)

    try:
        if args.calibrate_bn:
            calibrate_bn(model, batches(args.calibrate_bn, skip=args.num_images,
                                        seed=args.seed + 1))
        inputs = [((x, samples), n) for x, samples, n in batches(args.num_images)]
    except DataUnavailableError as e:
        sys.exit(f'error: {e} (--random-input C,H,W)')

    result = check_spike_driven(model, inputs,
                                forward=lambda x, s: forward_tensor(model, x, s),
                                atol=args.atol)
    rows = result['neurons']
    if args.per_neuron:
        w = max(len(r['name']) for r in rows)
        print(f"{'neuron':<{w}} {'D':>2} {'norm':>5} {'integer sum':>12} {'binary spikes':>14}")
        for r in rows:
            flag = '' if r['match'] and r['train_ok'] else '  MISMATCH'
            print(f"{r['name']:<{w}} {r['max_spikes']:>2} {r['norm']:>5g} "
                  f"{r['integer_spikes']:>12.0f} {r['binary_spikes']:>14d}{flag}")
    bad = [r['name'] for r in rows if not (r['match'] and r['train_ok'])]
    print(f"images: {result['num_images']}  integer neurons: {result['num_neurons']}")
    print(f"max |output(integer) - output(spike-driven)|: {result['max_abs_diff']:.3g} "
          f"(atol {args.atol:g})")
    print(f"integer spike sum (SOP report): {result['integer_spikes']:.0f}   "
          f"binary spikes emitted: {result['binary_spikes']}   "
          f"neurons that differ: {len(bad)}{' ' + str(bad[:5]) if bad else ''}")
    print('PASSED' if result['passed'] else 'FAILED')
    if args.out:
        out = {k: v for k, v in result.items() if k != 'report'}
        with open(args.out, 'w') as f:
            json.dump(out, f, indent=2)
    if not result['passed']:
        sys.exit(1)
    return result


if __name__ == '__main__':
    main()
