"""HARDVS (Wang et al., AAAI 2024): 300 human activities recorded with a DAVIS346 (346x260).

The release comes in two forms, both read here through an annotation list file:

- rendered event frames ("rawframes", what the E-SpikeFormer HAR-DVS code trains on): one folder
  of images per clip, e.g. ``action_001/dvSave-2021_10_15_19_18_02/``; upstream's own copy adds
  one more folder level (each sub-folder of a listed folder is a clip), also accepted here;
- compact event streams: one ``.npz`` per clip with keys ``t``, ``x``, ``y``, ``p``.

Annotation lines are ``<path> <label>`` or ``<path> <total_frames> <label>`` (mmaction's
rawframe format), with 0-based labels; a path without a suffix that names no folder is read as
``<path>.npz``. The 300 class names come from ``HARDVS_300_class.txt`` (Apache-2.0, copied from
the HARDVS repository, see ``HARDVS_300_class.PROVENANCE.md`` beside it): line ``ActionNNN name``
is class ``NNN - 1``.
"""
import os
import os.path as osp
import re
from typing import List, Optional, Sequence, Tuple, Union

from mmpretrain.datasets import BaseDataset

from mmspike.registry import DATASETS
from ..transforms.event_transforms import FRAME_SUFFIXES

HARDVS_CLASS_FILE = osp.join(osp.dirname(__file__), 'HARDVS_300_class.txt')
HARDVS_SENSOR_SIZE = (346, 260)  # (width, height) of the DAVIS346
_CLASS_LINE = re.compile(r'Action(\d+)\s*-?\s*(.*?)\s*')


def load_hardvs_classes(path: str = HARDVS_CLASS_FILE) -> Tuple[str, ...]:
    """Class names of a HARDVS class file, index ``NNN - 1`` for line ``ActionNNN name``.

    A file whose lines are not all of that form is read as one class name per line, in order.
    """
    with open(path, encoding='utf-8', newline='') as f:
        lines = [ln.strip() for ln in f.read().splitlines() if ln.strip()]
    if not lines:
        raise ValueError(f'class file {path} is empty')
    matches = [_CLASS_LINE.fullmatch(ln) for ln in lines]
    if not all(matches):
        return tuple(lines)
    numbers = [int(m.group(1)) for m in matches]
    if sorted(numbers) != list(range(1, len(numbers) + 1)):
        raise ValueError(f'class file {path}: Action numbers must be 1..{len(numbers)} each once')
    names = [''] * len(numbers)
    for num, m in zip(numbers, matches):
        names[num - 1] = m.group(2) or f'Action{num:03d}'
    return tuple(names)


HARDVS_CLASSES = load_hardvs_classes()


@DATASETS.register_module()
class HARDVSDataset(BaseDataset):
    """HARDVS as an mmpretrain classification dataset of event clips.

    Each sample is ``dict(gt_label=...)`` plus either ``frame_dir`` (a rendered-frame folder, for
    :class:`mmspike.datasets.transforms.SampleFrameClip`) or ``event_path`` and ``sensor_size``
    (an event stream, for :class:`mmspike.datasets.transforms.LoadEvents`).

    Args:
        ann_file (str): The annotation list (see the module docstring).
        data_root (str): Root that ``ann_file`` and ``data_prefix`` are relative to.
            Defaults to ''.
        data_prefix (str | dict): Folder the listed paths are relative to. Defaults to ''.
        modality (str): ``'frames'``, ``'events'`` or ``'auto'`` (by suffix and what exists on
            disk, per line). Defaults to ``'auto'``.
        sensor_size (Sequence[int]): ``(width, height)`` of the event streams.
            Defaults to ``(346, 260)``.
        expand_subfolders (bool): A listed folder holding no frames but sub-folders becomes one
            clip per sub-folder (upstream's rawframes layout). Defaults to True.
        classes (str | Sequence[str], optional): Class names or a class file. Defaults to None
            (the 300 HARDVS classes).
        **kwargs: Other arguments of :class:`mmpretrain.datasets.BaseDataset`.
    """
    METAINFO = {'classes': HARDVS_CLASSES}

    def __init__(self,
                 ann_file: str,
                 data_root: str = '',
                 data_prefix: Union[str, dict] = '',
                 modality: str = 'auto',
                 sensor_size: Sequence[int] = HARDVS_SENSOR_SIZE,
                 expand_subfolders: bool = True,
                 classes: Union[str, Sequence[str], None] = None,
                 **kwargs) -> None:
        assert modality in ('auto', 'frames', 'events'), \
            f"modality must be 'auto', 'frames' or 'events', got {modality!r}"
        assert len(sensor_size) == 2 and min(sensor_size) > 0, \
            f'sensor_size must be (width, height), got {sensor_size}'
        assert ann_file, 'HARDVSDataset needs an annotation list file (ann_file)'
        self.modality = modality
        self.sensor_size = tuple(int(s) for s in sensor_size)
        self.expand_subfolders = expand_subfolders
        if isinstance(classes, str):  # parse ActionNNN lines, which list_from_file would keep
            classes = load_hardvs_classes(classes)
        super().__init__(ann_file=ann_file, data_root=data_root, data_prefix=data_prefix,
                         classes=classes, **kwargs)

    def _parse_line(self, line: str, lineno: int) -> Tuple[str, Optional[int], int]:
        parts = line.split()
        where = f'{self.ann_file}, line {lineno}'
        if len(parts) not in (2, 3):
            raise ValueError(f'{where}: expected "<path> <label>" or "<path> <total_frames> '
                             f'<label>", got {line!r}')
        try:
            label = int(parts[-1])
            total = int(parts[1]) if len(parts) == 3 else None
        except ValueError:
            raise ValueError(f'{where}: label and frame count must be integers, '
                             f'got {line!r}') from None
        num_classes = len(self.metainfo['classes'])
        if not 0 <= label < num_classes:
            raise ValueError(f'{where}: label {label} outside 0..{num_classes - 1} '
                             '(labels are 0-based)')
        return parts[0], total, label

    def _frame_clips(self, folder: str) -> List[str]:
        """The clip folders a listed folder stands for."""
        names = os.listdir(folder)
        if any(osp.splitext(n)[1].lower() in FRAME_SUFFIXES for n in names):
            return [folder]
        subdirs = sorted(n for n in names if osp.isdir(osp.join(folder, n)))
        if self.expand_subfolders and subdirs:
            return [osp.join(folder, n) for n in subdirs]
        raise FileNotFoundError(f'no frames ({", ".join(FRAME_SUFFIXES)}) in {folder}')

    def load_data_list(self) -> List[dict]:
        prefix = self.data_prefix.get('img_path', '') or ''
        with open(self.ann_file, encoding='utf-8') as f:
            lines = f.read().splitlines()
        data_list = []
        for lineno, line in enumerate(lines, 1):
            if not line.strip():
                continue
            rel, total, label = self._parse_line(line, lineno)
            path = osp.join(prefix, rel)
            modality = self.modality
            if modality == 'auto':
                if path.lower().endswith('.npz') or path.lower().endswith('.bin'):
                    modality = 'events'
                elif osp.isdir(path):
                    modality = 'frames'
                elif osp.isfile(path + '.npz'):
                    modality = 'events'
                else:
                    raise FileNotFoundError(f'{self.ann_file}, line {lineno}: {path} is neither '
                                            'a frame folder nor an event file (.npz)')
            if modality == 'events':
                if not osp.splitext(path)[1]:
                    path += '.npz'
                if not osp.isfile(path):
                    raise FileNotFoundError(f'{self.ann_file}, line {lineno}: event file '
                                            f'{path} not found')
                data_list.append(dict(event_path=path, img_path=path, gt_label=label,
                                      sensor_size=self.sensor_size))
            else:
                if not osp.isdir(path):
                    raise FileNotFoundError(f'{self.ann_file}, line {lineno}: frame folder '
                                            f'{path} not found')
                clips = self._frame_clips(path)
                for clip in clips:
                    info = dict(frame_dir=clip, img_path=clip, gt_label=label)
                    if total is not None and len(clips) == 1:
                        info['ann_total_frames'] = total
                    data_list.append(info)
        if not data_list:
            raise ValueError(f'annotation file {self.ann_file} lists no clips')
        return data_list

    def extra_repr(self) -> List[str]:
        return super().extra_repr() + [f'Modality: \t{self.modality}',
                                       f'Sensor size (w, h): \t{self.sensor_size}']
