"""The digit event streams (:mod:`mmspike.datasets.digit_events`) as an mmpretrain dataset."""
from mmspike.datasets.digit_canvas import DIGIT_CLASSES
from mmspike.datasets.digit_events import (DEFAULT_EVENTS_ROOT, DIGIT_EVENTS_SENSOR,
                                           build_digit_events)
from mmspike.registry import DATASETS
from .hardvs import HARDVSDataset


@DATASETS.register_module()
class DigitEventsDataset(HARDVSDataset):
    """The digit event streams as a :class:`HARDVSDataset` of ``.npz`` clips (10 classes,
    sensor 34x34), built at first use.

    Args:
        split (str): ``'train'`` or ``'test'``. Defaults to ``'train'``.
        data_root (str): Defaults to ``'data/digit_events'``.
        build_cfg (dict, optional): Overrides of :data:`DEFAULT_EVENTS_CFG`. Defaults to None.
        **kwargs: Other arguments of :class:`HARDVSDataset` (``pipeline``, ``test_mode``...).
    """
    METAINFO = {'classes': DIGIT_CLASSES}

    def __init__(self, split: str = 'train', data_root: str = DEFAULT_EVENTS_ROOT,
                 build_cfg: dict = None, **kwargs) -> None:
        if split not in ('train', 'test'):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        build_digit_events(data_root, **(build_cfg or {}))
        kwargs.setdefault('ann_file', f'ann_{split}.txt')
        super().__init__(data_root=data_root, data_prefix='', modality='events',
                         sensor_size=DIGIT_EVENTS_SENSOR, classes=DIGIT_CLASSES, **kwargs)
