"""The digit canvases (:mod:`mmspike.datasets.digit_canvas`) as an mmdet COCO dataset."""
from mmdet.datasets import CocoDataset

from mmspike.datasets.digit_canvas import (DEFAULT_ROOT, DIGIT_CLASSES, DIGIT_PALETTE,
                                           build_at_first_use, build_digit_canvas)
from mmspike.registry import DATASETS


@DATASETS.register_module()
class DigitCanvasCocoDataset(CocoDataset):
    """Digit canvases as an mmdet COCO instance dataset (boxes and masks, 10 classes).

    Builds ``data_root`` at first use (:func:`build_digit_canvas`); the COCO file is
    ``annotations/instances_{split}.json`` and the images ``images/{split}/``, so an
    ``mmdet.CocoMetric`` with ``ann_file=data_root + 'annotations/instances_test.json'``
    evaluates it.

    Args:
        split (str): ``'train'`` or ``'test'``. Defaults to ``'train'``.
        data_root (str): Defaults to ``'data/digit_canvas/'``.
        build_cfg (dict, optional): Overrides of :data:`DEFAULT_CANVAS_CFG`.
            Defaults to None.
        **kwargs: Other arguments of :class:`mmdet.datasets.CocoDataset`.
    """
    METAINFO = dict(classes=DIGIT_CLASSES, palette=DIGIT_PALETTE)

    def __init__(self, split: str = 'train', data_root: str = DEFAULT_ROOT + '/',
                 build_cfg: dict = None, **kwargs) -> None:
        if split not in ('train', 'test'):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        build_at_first_use(data_root.rstrip('/'), build_digit_canvas, build_cfg)
        kwargs.setdefault('ann_file', f'annotations/instances_{split}.json')
        kwargs.setdefault('data_prefix', dict(img=f'images/{split}/'))
        super().__init__(data_root=data_root, **kwargs)
