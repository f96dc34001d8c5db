"""The 1,797 8x8 handwritten digits that scikit-learn ships inside its wheel (UCI optdigits, BSD).

Small enough to train a spiking classifier on two CPU cores in a minute or two, real enough that the
top-1 means something: the README's demo dataset. No download: the data comes with scikit-learn.
"""
from typing import List

import numpy as np
from mmpretrain.datasets import BaseDataset

from mmspike.registry import DATASETS


@DATASETS.register_module()
class DigitsDataset(BaseDataset):
    """scikit-learn's handwritten digits as an mmpretrain classification dataset.

    A fixed stratified split (``test_ratio`` of each class, seed 0) makes ``'train'`` and ``'test'``
    disjoint and identical on every machine. Images are ``8x8x1`` ``uint8`` (the 0..16 intensities
    scaled to 0..255) under the key ``img``.

    Args:
        split (str): ``'train'`` or ``'test'``.
        test_ratio (float): Fraction held out for test. Defaults to 0.25.
        pipeline (list): Transforms. Defaults to ``()``.
        **kwargs: Other arguments of :class:`mmpretrain.datasets.BaseDataset`.
    """
    METAINFO = {'classes': tuple(str(i) for i in range(10))}

    def __init__(self, split: str = 'train', test_ratio: float = 0.25, pipeline=(), **kwargs):
        assert split in ('train', 'test'), f"split must be 'train' or 'test', got {split!r}"
        assert 0.0 < test_ratio < 1.0, f'test_ratio must be in (0, 1), got {test_ratio}'
        self.split = split
        self.test_ratio = test_ratio
        super().__init__(ann_file='', pipeline=pipeline, **kwargs)

    def load_data_list(self) -> List[dict]:
        from sklearn.datasets import load_digits
        digits = load_digits()
        images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
        labels = digits.target.astype(np.int64)
        rng = np.random.RandomState(0)
        test_mask = np.zeros(len(labels), dtype=bool)
        for c in np.unique(labels):
            idx = np.flatnonzero(labels == c)
            n_test = int(round(len(idx) * self.test_ratio))
            test_mask[rng.permutation(idx)[:n_test]] = True
        keep = test_mask if self.split == 'test' else ~test_mask
        return [dict(img=images[i], gt_label=int(labels[i]), sample_idx=int(i))
                for i in np.flatnonzero(keep)]
