"""Integer-aware synaptic operations (SOPs) and energy of a spiking model, layer by layer.

    python tools/analysis_tools/get_sops.py CONFIG [CHECKPOINT] --num-images 16
    python tools/analysis_tools/get_sops.py CONFIG --random-input 3,224,224 --num-images 2

For every conv, linear and attention matmul: dense MACs per time step, the firing rate of its
spike input (mean integer spike count per element: D inside, T not), SOPs = fr * T * MACs and the
energy (E_AC per SOP for spike-fed layers, E_MAC per MAC for real-valued inputs such as the first
layer). Prints a table and writes sops.json, sops.csv and sops.png into --out-dir.
"""
import argparse
import os
import os.path as osp
import sys

import torch
from mmengine.config import DictAction

from mmspike.analysis import E_AC_PJ, E_MAC_PJ, SOPCounter
from mmspike.analysis.config_utils import (DataUnavailableError, batch_source, build_model,
                                           calibrate_bn, check_tool_args, forward_tensor,
                                           load_config)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Per-layer SOPs / energy of a spiking model')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', nargs='?', default=None,
                        help='checkpoint (weights-only loading); random weights if omitted')
    parser.add_argument('--num-images', type=int, default=16,
                        help='number of images to average over (default 16)')
    parser.add_argument('--batch-size', type=int, default=None,
                        help='batch size (default: the dataloader\'s, 8 for random input)')
    parser.add_argument('--random-input', metavar='C,H,W', default=None,
                        help='use random images of this shape instead of the test dataloader')
    parser.add_argument('--mode', default='predict', choices=['predict', 'tensor'],
                        help="forward mode of the model: 'predict' (inference with "
                        "post-processing, default) or 'tensor' (raw outputs)")
    parser.add_argument('--split', default='test', choices=['test', 'val'],
                        help='dataloader to take images from (default test)')
    parser.add_argument('--out-dir', default=None,
                        help='output directory (default work_dirs/sops/<config name>)')
    parser.add_argument('--e-mac', type=float, default=E_MAC_PJ,
                        help=f'energy per MAC in pJ (default {E_MAC_PJ})')
    parser.add_argument('--e-ac', type=float, default=E_AC_PJ,
                        help=f'energy per AC in pJ (default {E_AC_PJ})')
    parser.add_argument('--time-steps', type=int, default=None,
                        help='T of the model (default: the backbone\'s T attribute, else 1)')
    parser.add_argument('--calibrate-bn', type=int, default=0, metavar='N',
                        help='first re-estimate BatchNorm statistics on N other random / dataset '
                        'images (profiling untrained weights; default 0: off)')
    parser.add_argument('--strict', action='store_true',
                        help='fail when a spike operand holds non-integer counts')
    parser.add_argument('--device', default='cpu', help='device (default cpu)')
    parser.add_argument('--seed', type=int, default=0, help='seed of random weights and inputs')
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

    batches = batch_source(cfg, model, args, default_batch_size=8)

    source = (f'random images {args.random_input}' if args.random_input is not None
              else f'{args.split} dataloader')
    counter = SOPCounter(model, time_steps=args.time_steps, e_mac=args.e_mac, e_ac=args.e_ac,
                         strict=args.strict)
    try:
        if args.calibrate_bn:
            # calibration images are not the measured ones (other seed / the images after them)
            calibrate_bn(model, batches(args.calibrate_bn, skip=args.num_images,
                                        seed=args.seed + 1))
            source += f', BN statistics calibrated on {args.calibrate_bn} other images'
        with torch.no_grad():
            for inputs, samples, n in batches(args.num_images):
                with counter.measure(num_images=n):
                    forward_tensor(model, inputs, samples, mode=args.mode)
    except DataUnavailableError as e:
        sys.exit(f'error: {e} (--random-input C,H,W)')
    report = counter.report()
    report.meta['config'] = args.config
    report.meta['checkpoint'] = args.checkpoint
    report.meta['input'] = source
    print(report.table())
    out_dir = args.out_dir or osp.join('work_dirs', 'sops',
                                       osp.splitext(osp.basename(args.config))[0])
    os.makedirs(out_dir, exist_ok=True)
    paths = report.dump(out_dir)
    print('wrote ' + ', '.join(paths.values()))
    return report


if __name__ == '__main__':
    main()
