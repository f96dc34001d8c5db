"""CIFAR10-DVS (Li et al., Front. Neurosci. 2017): 10,000 CIFAR-10 images (1,000 per class) shown
to a DVS128 (128x128) on a monitor and recorded as event streams.

Layouts read here (``data_root/<class>/<file>``, the class folders named as below):

- the original release: ``cifar10_<class>_<i>.aedat``, jAER AEDAT 2.0 with DVS128 addresses
  (:mod:`mmspike.datasets.aedat_legacy`);
- the later iniVation conversion (tonic's download): ``cifar10_<class>_<i>.aedat4``;
- spikingjelly's ``events_np``: ``cifar10_<class>_<i>.npz`` with ``t``, ``x``, ``y``, ``p``.

Orientation: spikingjelly (whose frames the Spikformer code trains on) reads the ``.aedat``
address fields as ``x = 127 - y_field``, ``y = 127 - x_field``, ``p = 1 - p_field``, and its
``.npz`` files hold that orientation. ``orientation='spikingjelly'`` (default) applies the same to
``.aedat`` files so all three layouts agree; ``'raw'`` keeps the address fields. ``.aedat4``
files are read as their decoder gives them in both cases.

Split: CIFAR10-DVS has no official train/test split. As in the Spikformer code (spikingjelly's
``split_to_train_test_set(0.9, ..., random_split=False)``), each class's files are taken in
sorted file-name order (plain string order, so ``_10`` sorts before ``_2``, as spikingjelly's
folder dataset lists them) and the first ``ceil(n * train_ratio)`` are the training set, the rest
the test set: 900 / 100 per class for the full dataset.
"""
import math
import os
import os.path as osp
from typing import List, Sequence

from mmpretrain.datasets import BaseDataset

from mmspike.registry import DATASETS

CIFAR10_DVS_CLASSES = ('airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse',
                       'ship', 'truck')
CIFAR10_DVS_SUFFIXES = ('.aedat', '.aedat4', '.npz')


@DATASETS.register_module()
class CIFAR10DVSDataset(BaseDataset):
    """CIFAR10-DVS as an mmpretrain classification dataset of event streams.

    Each sample is ``dict(event_path, gt_label, sensor_size, event_remap)`` for
    :class:`mmspike.classification.transforms.LoadEventClip`.

    Args:
        data_root (str): Folder holding one sub-folder per class.
        split (str): ``'train'``, ``'test'`` or ``'all'``. Defaults to ``'train'``.
        train_ratio (float): Share of each class (in file-name order) in the training set.
            Defaults to 0.9.
        orientation (str): ``'spikingjelly'`` or ``'raw'`` (see the module docstring).
            Defaults to ``'spikingjelly'``.
        sensor_size (Sequence[int]): ``(width, height)``. Defaults to ``(128, 128)``.
        suffixes (Sequence[str]): Event file suffixes to list. Defaults to ``('.aedat',
            '.aedat4', '.npz')``.
        **kwargs: Other arguments of :class:`mmpretrain.datasets.BaseDataset` (``pipeline``,
            ``test_mode``, ...); ``ann_file`` is not used.
    """
    METAINFO = {'classes': CIFAR10_DVS_CLASSES}

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 train_ratio: float = 0.9,
                 orientation: str = 'spikingjelly',
                 sensor_size: Sequence[int] = (128, 128),
                 suffixes: Sequence[str] = CIFAR10_DVS_SUFFIXES,
                 **kwargs) -> None:
        if split not in ('train', 'test', 'all'):
            raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
        if not 0.0 < train_ratio <= 1.0:
            raise ValueError(f'train_ratio must be in (0, 1], got {train_ratio}')
        if orientation not in ('spikingjelly', 'raw'):
            raise ValueError(f"orientation must be 'spikingjelly' or 'raw', got {orientation!r}")
        if len(sensor_size) != 2 or min(sensor_size) <= 0:
            raise ValueError(f'sensor_size must be (width, height) > 0, got {sensor_size}')
        self.split = split
        self.train_ratio = train_ratio
        self.orientation = orientation
        self.sensor_size = tuple(int(s) for s in sensor_size)
        self.suffixes = tuple(s.lower() for s in suffixes)
        super().__init__(ann_file='', data_root=data_root, **kwargs)

    def split_files(self, files: List[str]) -> List[str]:
        """This split's share of one class's sorted files."""
        n_train = math.ceil(len(files) * self.train_ratio)
        if self.split == 'train':
            return files[:n_train]
        return files[n_train:] if self.split == 'test' else files

    def load_data_list(self) -> List[dict]:
        root = self.data_root
        if not osp.isdir(root):
            raise FileNotFoundError(f'CIFAR10-DVS root {root!r} is not a folder')
        data_list = []
        for label, name in enumerate(self.metainfo['classes']):
            folder = osp.join(root, name)
            if not osp.isdir(folder):
                raise FileNotFoundError(f'CIFAR10-DVS class folder {folder} not found (expected '
                                        f'one folder per class: {", ".join(self.CLASSES)})')
            files = sorted(f for f in os.listdir(folder)
                           if osp.splitext(f)[1].lower() in self.suffixes)
            if not files:
                raise FileNotFoundError(f'no event files ({", ".join(self.suffixes)}) in '
                                        f'{folder}')
            for f in self.split_files(files):
                path = osp.join(folder, f)
                remap = ('spikingjelly' if self.orientation == 'spikingjelly'
                         and f.lower().endswith('.aedat') else None)
                data_list.append(dict(event_path=path, img_path=path, gt_label=label,
                                      sensor_size=self.sensor_size, event_remap=remap))
        if not data_list:
            raise ValueError(f'CIFAR10-DVS split {self.split!r} of {root} is empty '
                             f'(train_ratio={self.train_ratio})')
        return data_list

    def extra_repr(self) -> List[str]:
        return super().extra_repr() + [f'Split: \t{self.split} (train_ratio {self.train_ratio})',
                                       f'Orientation: \t{self.orientation}']
