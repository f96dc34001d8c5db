"""The digit canvases (:mod:`mmspike.datasets.digit_canvas`) as an mmseg dataset."""
from mmseg.datasets import BaseSegDataset

from mmspike.datasets.digit_canvas import (DEFAULT_ROOT, DIGIT_CLASSES, DIGIT_PALETTE,
                                           SEG_IGNORE, build_at_first_use, build_digit_canvas)
from mmspike.registry import DATASETS


@DATASETS.register_module()
class DigitCanvasSegDataset(BaseSegDataset):
    """Digit canvases as an mmseg dataset: 11 classes (background and the 10 digits),
    label 255 on the faint fringe of each digit (ignored).

    Args:
        split (str): ``'train'`` or ``'test'``. Defaults to ``'train'``.
        data_root (str): Defaults to ``'data/digit_canvas/'``.
        build_cfg (dict, optional): Overrides of :data:`DEFAULT_CANVAS_CFG`.
            Defaults to None.
        **kwargs: Other arguments of :class:`mmseg.datasets.BaseSegDataset`.
    """
    METAINFO = dict(classes=('background', ) + DIGIT_CLASSES,
                    palette=[(0, 0, 0)] + DIGIT_PALETTE)

    def __init__(self, split: str = 'train', data_root: str = DEFAULT_ROOT + '/',
                 build_cfg: dict = None, **kwargs) -> None:
        if split not in ('train', 'test'):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        build_at_first_use(data_root.rstrip('/'), build_digit_canvas, build_cfg)
        kwargs.setdefault('data_prefix', dict(img_path=f'images/{split}',
                                              seg_map_path=f'seg/{split}'))
        super().__init__(data_root=data_root, img_suffix='.png', seg_map_suffix='.png',
                         reduce_zero_label=False, ignore_index=SEG_IGNORE, **kwargs)
