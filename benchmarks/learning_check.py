"""Prove the models learn: train each learning-check config, score it on held-out data.

Every model trains with ``tools/train.py`` and is scored with ``tools/test.py`` on data it never
saw (the held-out scikit-learn digits, composed onto canvases or turned into event streams; see
``mmspike/datasets/digit_canvas.py`` and ``digit_events.py``)::

    python benchmarks/learning_check.py                 # all models, one after the other
    python benchmarks/learning_check.py --only mask-rcnn spikeyolo-n
    python benchmarks/learning_check.py --list

Each line gives the held-out metric, its target, the wall time of training + testing and the
two commands. Results also go to ``<work-root>/learning_check.json``. A metric below its target
makes the exit status 1. Times are wall-clock on whatever else the machine is doing.
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

# name: (config, metric key of tools/test.py's output, scale to print, target, what)
CHECKS = {
    'mask-rcnn': ('configs/mmdet/spikeformer_digits.py', 'coco/bbox_mAP_50', 1.0, 0.7,
                  'E-SpikeFormer-2M + SpikeFPN + Mask R-CNN, digit canvases, bbox mAP@0.5'),
    'spikeyolo-n': ('configs/mmdet/spikeyolo-n_digits.py', 'coco/bbox_mAP_50', 1.0, 0.7,
                    'SpikeYOLO-n, digit canvases, bbox mAP@0.5'),
    'semantic-fpn': ('configs/mmseg/fpn_e-spikeformer_digits.py', 'mIoU', 0.01, 0.6,
                     'E-SpikeFormer-2M spiking Semantic FPN, digit canvases, mIoU (11 classes)'),
    'hardvs-events': ('configs/hardvs/e-spikeformer-2m_digits-events.py', 'accuracy/top1',
                      0.01, 0.5,
                      'E-SpikeFormer-2M, HAR-DVS route, T=4 ILIF, digit events, top-1 '
                      '(chance 0.1)'),
    'digits-cls': ('configs/mmpretrain/spiking-convnet_digits.py', 'accuracy/top1', 0.01, 0.9,
                   'spiking ConvNet, 8x8 digits, top-1 (chance 0.1)'),
}


def run(cmd, log_path):
    with open(log_path, 'a') as log:
        log.write('$ ' + ' '.join(cmd) + '\n')
        log.flush()
        proc = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode:
        raise RuntimeError(f'{" ".join(cmd)} failed (exit {proc.returncode}); see {log_path}')


def check(name, work_root, python):
    config, key, scale, target, what = CHECKS[name]
    work_dir = osp.join(work_root, name)
    if osp.exists(work_dir) and os.listdir(work_dir):
        raise FileExistsError(f'{work_dir} is not empty; pass a new --work-root (nothing is '
                              'deleted)')
    os.makedirs(work_dir, exist_ok=True)
    log_path = osp.join(work_dir, 'learning_check.log')
    train_cmd = [python, 'tools/train.py', config, '--work-dir', work_dir]
    t0 = time.time()
    run(train_cmd, log_path)
    t_train = time.time() - t0
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        ckpt = osp.join(work_dir, osp.basename(f.read().strip()))
    out = osp.join(work_dir, 'test_metrics.json')
    test_cmd = [python, 'tools/test.py', config, ckpt, '--work-dir', work_dir, '--out', out]
    t0 = time.time()
    run(test_cmd, log_path)
    t_test = time.time() - t0
    with open(out) as f:
        metrics = json.load(f)
    if key not in metrics:
        raise KeyError(f'{name}: tools/test.py reported {sorted(metrics)}, not {key!r}')
    value = float(metrics[key]) * scale
    return dict(name=name, what=what, metric=key, value=value, target=target,
                passed=value >= target, train_s=round(t_train, 1), test_s=round(t_test, 1),
                train_cmd=' '.join(train_cmd[1:]), test_cmd=' '.join(test_cmd[1:]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--only', nargs='+', choices=sorted(CHECKS), help='models to run')
    parser.add_argument('--work-root', default=None,
                        help='where runs go (default work_dirs/learning_check/<UTC time>)')
    parser.add_argument('--list', action='store_true', help='list the checks and exit')
    args = parser.parse_args()
    if args.list:
        for name, (config, key, _, target, what) in CHECKS.items():
            print(f'{name:14s} {config}  {key} >= {target}  ({what})')
        return 0
    work_root = args.work_root or osp.join(
        'work_dirs', 'learning_check', time.strftime('%Y%m%d_%H%M%S', time.gmtime()))
    os.makedirs(osp.join(ROOT, work_root), exist_ok=True)
    results, failed = [], False
    for name in args.only or list(CHECKS):
        try:
            res = check(name, work_root, sys.executable)
        except Exception as exc:  # report and go on with the other models
            print(f'{name:14s} ERROR {exc}', flush=True)
            failed = True
            continue
        results.append(res)
        failed |= not res['passed']
        print(f"{name:14s} {res['metric']} = {res['value']:.3f} (target >= {res['target']}, "
              f"{'ok' if res['passed'] else 'BELOW TARGET'}) | train {res['train_s']:.0f} s + "
              f"test {res['test_s']:.0f} s wall | python {res['train_cmd']}", flush=True)
        with open(osp.join(ROOT, work_root, 'learning_check.json'), 'w') as f:
            json.dump(results, f, indent=1)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
