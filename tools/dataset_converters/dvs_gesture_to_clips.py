"""Export the labelled clips of DVS128 Gesture recordings as compact ``.npz`` files, once, so
training reads one small file per clip instead of decoding a ~60 MB AEDAT 3.1 recording.

    python tools/dataset_converters/dvs_gesture_to_clips.py data/dvs_gesture/DvsGesture \\
        data/dvs_gesture/clips

Writes ``<out>/<split>/<recording>_<row>.npz`` for both splits; use them with
``DVSGestureDataset(..., clips_dir='<out>/<split>')`` (same samples, same order).
"""
import argparse
import os.path as osp
import time

from mmspike.classification.datasets.dvs_gesture import export_gesture_clips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('data_root', help='the DvsGesture folder of the release')
    parser.add_argument('out_dir', help='where <split>/<recording>_<row>.npz go')
    parser.add_argument('--splits', nargs='+', default=['train', 'test'],
                        choices=['train', 'test'])
    args = parser.parse_args()
    for split in args.splits:
        start = time.perf_counter()
        n = export_gesture_clips(args.data_root, osp.join(args.out_dir, split), split)
        print(f'{split}: {n} clips -> {osp.join(args.out_dir, split)} '
              f'({time.perf_counter() - start:.1f} s)')


if __name__ == '__main__':
    main()
