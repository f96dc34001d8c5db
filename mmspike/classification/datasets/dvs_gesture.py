"""DVS128 Gesture (Amir et al., CVPR 2017): 11 hand and arm gestures of 29 subjects under 3
lighting conditions, recorded with a DVS128 (128x128); IBM's release, CC BY 4.0.

Release layout (``DvsGesture/``, read here under ``data_root``):

- ``user<NN>_<lighting>.aedat``: one cAER AEDAT 3.1 recording per subject and lighting (about a
  minute, all gestures in a row; :mod:`mmspike.datasets.aedat_legacy`);
- ``user<NN>_<lighting>_labels.csv``: ``class,startTime_usec,endTime_usec`` rows, classes 1-11
  (``gesture_mapping.csv``), times in the recording's microseconds;
- ``trials_to_train.txt`` / ``trials_to_test.txt``: the recordings of each split, one file name
  per line (users 1-23 train, 24-29 test: 1,176 / 288 clips).

Clips (deterministic): every labels row is one sample, in the order of the trials list and then of
the csv rows. A clip holds the events with ``startTime_usec <= t < endTime_usec`` (the labelled
gesture, about 6 s on average; the same cut as spikingjelly and tonic), label ``class - 1``.
Rows whose spans overlap (some csv files have them) stay separate samples with their own spans.
Events are kept as recorded (x = bits 17-31, y = bits 2-16 of the AEDAT 3.1 data word), the
orientation of spikingjelly's and tonic's clips.

Speed: a clip read from its recording decodes the whole recording (~60 MB; seconds on one core),
so shuffled training should read clips exported once to ``.npz`` files
(``tools/dataset_converters/dvs_gesture_to_clips.py``, :func:`export_gesture_clips`) through
``clips_dir``: the same samples in the same order, each clip file holding exactly the events of
its labelled span.
"""
import csv
import os
import os.path as osp
from typing import List, Optional, Sequence, Tuple

import numpy as np
from mmpretrain.datasets import BaseDataset

from mmspike.datasets.events import load_events, save_npz_events
from mmspike.registry import DATASETS

DVS_GESTURE_CLASSES = ('hand_clapping', 'right_hand_wave', 'left_hand_wave',
                       'right_arm_clockwise', 'right_arm_counter_clockwise', 'left_arm_clockwise',
                       'left_arm_counter_clockwise', 'arm_roll', 'air_drums', 'air_guitar',
                       'other_gestures')
LABELS_HEADER = ('class', 'startTime_usec', 'endTime_usec')


def read_gesture_labels(path: str, num_classes: int = 11) -> List[Tuple[int, int, int]]:
    """Rows ``(class, start_us, end_us)`` of a DVS128 Gesture ``*_labels.csv`` (classes as in the
    file, 1-based), checked: the header, three integers per row, ``1 <= class <= num_classes``
    and ``0 <= start < end``."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'DVS128 Gesture labels file not found: {path}')
    with open(path, newline='', encoding='utf-8') as f:
        rows = [r for r in csv.reader(f) if any(c.strip() for c in r)]
    if not rows or tuple(c.strip() for c in rows[0]) != LABELS_HEADER:
        raise ValueError(f'{path}: the first line must be "{",".join(LABELS_HEADER)}", got '
                         f'{",".join(rows[0]) if rows else "an empty file"!r}')
    out = []
    for lineno, row in enumerate(rows[1:], 2):
        try:
            cls, start, end = (int(c) for c in row)
        except ValueError:
            raise ValueError(f'{path}, line {lineno}: expected three integers "class,'
                             f'startTime_usec,endTime_usec", got {",".join(row)!r}') from None
        if not 1 <= cls <= num_classes:
            raise ValueError(f'{path}, line {lineno}: class {cls} outside 1..{num_classes}')
        if not 0 <= start < end:
            raise ValueError(f'{path}, line {lineno}: need 0 <= startTime_usec < endTime_usec, '
                             f'got {start}, {end}')
        out.append((cls, start, end))
    if not out:
        raise ValueError(f'{path}: no labelled gestures')
    return out


@DATASETS.register_module()
class DVSGestureDataset(BaseDataset):
    """DVS128 Gesture as an mmpretrain classification dataset of labelled event clips.

    Each sample is ``dict(event_path, clip_window=(start_us, end_us), gt_label, sensor_size,
    clip_index)`` for :class:`mmspike.classification.transforms.LoadEventClip`.

    Args:
        data_root (str): The ``DvsGesture`` folder of the release.
        split (str): ``'train'`` or ``'test'``: reads ``trials_to_<split>.txt``.
            Defaults to ``'train'``.
        ann_file (str, optional): Another trials list (file names relative to ``data_root``).
            Defaults to None (the split's list).
        sensor_size (Sequence[int]): ``(width, height)``. Defaults to ``(128, 128)``.
        clips_dir (str, optional): Folder of clips exported by :func:`export_gesture_clips`
            (``<recording>_<row>.npz``); read instead of cutting the recordings. Defaults to
            None.
        **kwargs: Other arguments of :class:`mmpretrain.datasets.BaseDataset`.
    """
    METAINFO = {'classes': DVS_GESTURE_CLASSES}

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 ann_file: str = None,
                 sensor_size: Sequence[int] = (128, 128),
                 clips_dir: Optional[str] = None,
                 **kwargs) -> None:
        if split not in ('train', 'test'):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        if len(sensor_size) != 2 or min(sensor_size) <= 0:
            raise ValueError(f'sensor_size must be (width, height) > 0, got {sensor_size}')
        self.split = split
        self.sensor_size = tuple(int(s) for s in sensor_size)
        self.clips_dir = clips_dir
        super().__init__(ann_file=ann_file or f'trials_to_{split}.txt', data_root=data_root,
                         **kwargs)

    def recordings(self) -> List[str]:
        """Paths of the recordings of the trials list, in its order."""
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(f'DVS128 Gesture trials list not found: {self.ann_file}')
        with open(self.ann_file, encoding='utf-8') as f:
            names = [ln.strip() for ln in f.read().splitlines() if ln.strip()]
        if not names:
            raise ValueError(f'{self.ann_file} lists no recordings')
        paths = [osp.join(self.data_root, name) for name in names]
        for path in paths:
            if not osp.isfile(path):
                raise FileNotFoundError(f'{self.ann_file}: recording {path} not found')
        return paths

    def load_data_list(self) -> List[dict]:
        num_classes = len(self.metainfo['classes'])
        data_list = []
        for path in self.recordings():
            stem = osp.splitext(path)[0]
            for i, (cls, start, end) in enumerate(
                    read_gesture_labels(stem + '_labels.csv', num_classes)):
                info = dict(event_path=path, img_path=path, gt_label=cls - 1,
                            clip_window=(start, end), clip_index=i, sensor_size=self.sensor_size)
                if self.clips_dir is not None:
                    clip = osp.join(self.clips_dir, f'{osp.basename(stem)}_{i}.npz')
                    if not osp.isfile(clip):
                        raise FileNotFoundError(
                            f'exported clip {clip} not found: run tools/dataset_converters/'
                            f'dvs_gesture_to_clips.py on {self.data_root} first')
                    info.update(event_path=clip, img_path=clip)
                    del info['clip_window']
                data_list.append(info)
        return data_list

    def extra_repr(self) -> List[str]:
        return super().extra_repr() + [f'Split: \t{self.split}',
                                       f'Sensor size (w, h): \t{self.sensor_size}']


def export_gesture_clips(data_root: str, out_dir: str, split: str = 'train',
                         sensor_size: Sequence[int] = (128, 128)) -> int:
    """Write every labelled clip of a split as ``<out_dir>/<recording>_<row>.npz`` (the compact
    ``t``, ``x``, ``y``, ``p`` format), decoding each recording once. Returns the number of clips.

    The clips hold the events ``start <= t < end`` of their labels row, as
    :class:`DVSGestureDataset` cuts them; read them back with ``clips_dir=out_dir``.
    """
    dataset = DVSGestureDataset(data_root=data_root, split=split, sensor_size=sensor_size,
                                lazy_init=True)
    os.makedirs(out_dir, exist_ok=True)
    count = 0
    for path in dataset.recordings():
        events = load_events(path, tuple(sensor_size))
        stem = osp.splitext(path)[0]
        for i, (_, start, end) in enumerate(read_gesture_labels(stem + '_labels.csv')):
            lo, hi = np.searchsorted(events['t'], [start, end], side='left')
            if hi == lo:
                raise ValueError(f'{path}: the clip [{start}, {end}) us of labels row {i} '
                                 'holds no events')
            save_npz_events(osp.join(out_dir, f'{osp.basename(stem)}_{i}.npz'),
                            {k: v[lo:hi] for k, v in events.items()})
            count += 1
    return count
