"""Digit canvases: a small real detection / instance / semantic segmentation set a CPU learns.

Built from the 1,797 real 8x8 handwritten digits that scikit-learn ships (UCI optdigits, BSD),
split as :class:`mmspike.classification.datasets.DigitsDataset` splits them (stratified, 25 % held out, seed 0):
**train canvases use only training digits, test canvases only test digits**, so the test metric
is measured on handwriting the model never saw.

How a split is made (:func:`compose_canvases`, deterministic, NumPy only):

1. the split's digits are shuffled (``RandomState(seed)``) and dealt out in order, 1 to
   ``max_digits`` per canvas, until every digit of the split is used exactly once;
2. each digit is upscaled by an integer factor drawn from ``scales`` with nearest-neighbour
   repetition (so its pixels stay exact), intensities 0..16 mapped to 0..255;
3. it is pasted at a random position of a black ``canvas_size`` square where its
   ``8*scale`` cell does not overlap another digit's cell (1 px gap); after 100 failed draws the
   scale falls to ``min(scales)``, then the digit moves to the next canvas;
4. the instance mask is the digit's pixels of intensity >= ``mask_threshold`` (of 16); the box
   is the tight box of that mask (``[x0, y0, x1, y1)`` in pixels);
5. the semantic map is 0 for background, ``1 + class`` on the mask, and 255 (ignored by the
   loss and the metric) on the faint fringe pixels ``0 < intensity < mask_threshold``.

:func:`build_digit_canvas` writes both splits under one root (default ``data/digit_canvas``)::

    images/{train,test}/000000.png       8-bit gray canvases
    annotations/instances_{train,test}.json   COCO: boxes, uncompressed-RLE masks, 10 classes
    seg/{train,test}/000000.png           mmseg label maps (0 bg, 1..10 digits, 255 ignore)
    BUILD.json                            generator version and parameters

The datasets build it at first use (atomically: into a temporary folder renamed into place);
a root built with other parameters is an error, never silently rebuilt or deleted. The dataset
classes live in the task packages: :class:`mmspike.detection.datasets.DigitCanvasCocoDataset`
(mmdet) and :class:`mmspike.segmentation.datasets.DigitCanvasSegDataset` (mmseg).
``python -c "from mmspike.datasets.digit_canvas import build_digit_canvas as b; b()"`` builds it
by hand.
"""
import json
import os
import os.path as osp
import shutil
import tempfile
from typing import Dict, List, Sequence, Tuple

import numpy as np


DIGIT_CLASSES = tuple(str(i) for i in range(10))
DIGIT_PALETTE = [(220, 20, 60), (119, 11, 32), (0, 0, 142), (0, 0, 230), (106, 0, 228),
                 (0, 60, 100), (0, 80, 100), (0, 0, 70), (0, 0, 192), (250, 170, 30)]
DIGIT_CANVAS_VERSION = 1
DEFAULT_ROOT = 'data/digit_canvas'
# The parameters of the shipped configs; BUILD.json records them.
DEFAULT_CANVAS_CFG = dict(canvas_size=64, scales=(2, 3, 4), max_digits=3, mask_threshold=4,
                          test_ratio=0.25, seed=0)
SEG_IGNORE = 255


def digits_split(split: str, test_ratio: float = 0.25) -> Tuple[np.ndarray, np.ndarray,
                                                                np.ndarray]:
    """scikit-learn's digits of one split, as :class:`DigitsDataset` splits them.

    Returns:
        tuple: ``images`` ``[N, 8, 8]`` int64 intensities 0..16, ``labels`` ``[N]`` and the
        indices into the 1,797 digits.
    """
    if split not in ('train', 'test'):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if not 0.0 < test_ratio < 1.0:
        raise ValueError(f'test_ratio must be in (0, 1), got {test_ratio}')
    from sklearn.datasets import load_digits
    digits = load_digits()
    labels = digits.target.astype(np.int64)
    rng = np.random.RandomState(0)
    test_mask = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        test_mask[rng.permutation(idx)[:int(round(len(idx) * test_ratio))]] = True
    keep = np.flatnonzero(test_mask if split == 'test' else ~test_mask)
    return digits.images[keep].astype(np.int64), labels[keep], keep


def _place(rng: np.random.RandomState, cells: List[Tuple[int, int, int, int]], size: int,
           canvas: int) -> Tuple[int, int]:
    """Top-left corner of a free ``size`` cell (1 px gap to every cell), or None."""
    if size > canvas:
        return None
    for _ in range(100):
        x, y = (int(v) for v in rng.randint(0, canvas - size + 1, size=2))
        if all(x + size + 1 <= cx0 or cx1 + 1 <= x or y + size + 1 <= cy0 or cy1 + 1 <= y
               for cx0, cy0, cx1, cy1 in cells):
            return x, y
    return None


def compose_canvases(images: np.ndarray, labels: np.ndarray, canvas_size: int = 64,
                     scales: Sequence[int] = (2, 3, 4), max_digits: int = 3,
                     mask_threshold: int = 4, seed: int = 0) -> List[dict]:
    """Compose digits onto canvases (see the module docstring for the procedure).

    Args:
        images (np.ndarray): ``[N, 8, 8]`` intensities 0..16.
        labels (np.ndarray): ``[N]`` classes 0..9.
        canvas_size (int): Side of the square canvas. Defaults to 64.
        scales (Sequence[int]): Integer upscaling factors to draw from. Defaults to (2, 3, 4).
        max_digits (int): At most this many digits per canvas. Defaults to 3.
        mask_threshold (int): Intensity (of 16) from which a pixel belongs to the digit.
            Defaults to 4.
        seed (int): Seed of the shuffling and placement. Defaults to 0.

    Returns:
        list[dict]: One dict per canvas: ``img`` ``[S, S]`` uint8, ``seg`` ``[S, S]`` uint8 and
        ``instances``, a list of ``dict(label, bbox=[x0, y0, x1, y1], mask=[S, S] bool,
        source=index into images)``.
    """
    images = np.asarray(images)
    if images.ndim != 3 or images.shape[1:] != (8, 8):
        raise ValueError(f'images must be [N, 8, 8], got shape {images.shape}')
    if len(labels) != len(images):
        raise ValueError(f'{len(images)} images but {len(labels)} labels')
    if not scales or min(scales) < 1 or 8 * min(scales) > canvas_size:
        raise ValueError(f'scales {tuple(scales)} must be >= 1 with 8 * min(scales) <= '
                         f'canvas_size {canvas_size}')
    if max_digits < 1:
        raise ValueError(f'max_digits must be >= 1, got {max_digits}')
    if not 1 <= mask_threshold <= 16:
        raise ValueError(f'mask_threshold must be in 1..16, got {mask_threshold}')
    rng = np.random.RandomState(seed)
    order = list(rng.permutation(len(images)))
    canvases = []
    while order:
        n = int(rng.randint(1, max_digits + 1))
        img = np.zeros((canvas_size, canvas_size), np.int64)
        seg = np.zeros((canvas_size, canvas_size), np.uint8)
        cells, instances = [], []
        while order and len(instances) < n:
            idx = order[0]
            scale = int(scales[rng.randint(len(scales))])
            pos = _place(rng, cells, 8 * scale, canvas_size)
            if pos is None and scale != min(scales):
                scale = int(min(scales))
                pos = _place(rng, cells, 8 * scale, canvas_size)
            if pos is None:
                break  # no room left: the digit opens the next canvas
            order.pop(0)
            x, y = pos
            size = 8 * scale
            digit = np.kron(images[idx], np.ones((scale, scale), np.int64))
            view = (slice(y, y + size), slice(x, x + size))
            img[view] = digit  # cells do not overlap
            mask = np.zeros((canvas_size, canvas_size), bool)
            mask[view] = digit >= mask_threshold
            seg_cell = seg[view]
            seg_cell[(digit > 0) & (digit < mask_threshold)] = SEG_IGNORE
            seg_cell[digit >= mask_threshold] = 1 + int(labels[idx])
            ys, xs = np.nonzero(mask)
            if len(ys) == 0:
                raise ValueError(f'digit {idx} has no pixel >= mask_threshold {mask_threshold}')
            cells.append((x, y, x + size, y + size))
            instances.append(dict(label=int(labels[idx]), mask=mask, source=int(idx),
                                  bbox=[int(xs.min()), int(ys.min()), int(xs.max()) + 1,
                                        int(ys.max()) + 1]))
        if not instances:
            raise RuntimeError('could not place a digit on an empty canvas')  # cannot happen
        canvases.append(dict(img=np.round(img * (255.0 / 16.0)).astype(np.uint8), seg=seg,
                             instances=instances))
    return canvases


def mask_to_rle(mask: np.ndarray) -> Dict[str, list]:
    """COCO uncompressed RLE of a boolean ``[H, W]`` mask (column-major runs, zeros first)."""
    flat = np.asarray(mask, bool).flatten(order='F')
    change = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        counts = [0] + counts
    return dict(size=[int(mask.shape[0]), int(mask.shape[1])], counts=[int(c) for c in counts])


def canvases_to_coco(canvases: List[dict], file_names: List[str]) -> dict:
    """A COCO instance annotation dict (categories ``1..10`` named ``'0'..'9'``)."""
    images, annotations = [], []
    for i, (canvas, name) in enumerate(zip(canvases, file_names)):
        h, w = canvas['img'].shape
        images.append(dict(id=i, file_name=name, height=int(h), width=int(w)))
        for inst in canvas['instances']:
            x0, y0, x1, y1 = inst['bbox']
            annotations.append(dict(
                id=len(annotations) + 1, image_id=i, category_id=inst['label'] + 1,
                bbox=[x0, y0, x1 - x0, y1 - y0], area=int(inst['mask'].sum()), iscrowd=0,
                segmentation=mask_to_rle(inst['mask']), digit_index=inst['source']))
    categories = [dict(id=c + 1, name=name) for c, name in enumerate(DIGIT_CLASSES)]
    return dict(images=images, annotations=annotations, categories=categories,
                info=dict(description='mmspike digit canvases (scikit-learn digits)',
                          version=DIGIT_CANVAS_VERSION))


def _build_record(cfg: dict) -> dict:
    return dict(version=DIGIT_CANVAS_VERSION,
                **{k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()})


def _write_split(tmp_root: str, split: str, cfg: dict) -> None:
    from PIL import Image
    images, labels, _ = digits_split(split, cfg['test_ratio'])
    seed = cfg['seed'] + (0 if split == 'train' else 1)
    canvases = compose_canvases(images, labels, cfg['canvas_size'], cfg['scales'],
                                cfg['max_digits'], cfg['mask_threshold'], seed)
    names = [f'{i:06d}.png' for i in range(len(canvases))]
    for sub in ('images', 'seg'):
        os.makedirs(osp.join(tmp_root, sub, split))
    for canvas, name in zip(canvases, names):
        Image.fromarray(canvas['img'], mode='L').save(osp.join(tmp_root, 'images', split, name))
        Image.fromarray(canvas['seg'], mode='L').save(osp.join(tmp_root, 'seg', split, name))
    os.makedirs(osp.join(tmp_root, 'annotations'), exist_ok=True)
    with open(osp.join(tmp_root, 'annotations', f'instances_{split}.json'), 'w') as f:
        json.dump(canvases_to_coco(canvases, names), f)


def build_digit_canvas(root: str = DEFAULT_ROOT, **cfg) -> str:
    """Make sure ``root`` holds the digit canvases of ``cfg`` (see the module docstring).

    Args:
        root (str): Output folder. Defaults to ``'data/digit_canvas'``.
        **cfg: Overrides of :data:`DEFAULT_CANVAS_CFG`.

    Returns:
        str: ``root``.

    Raises:
        ValueError: ``root`` exists but was built with other parameters, or is not a
            digit-canvas folder (it is never deleted or overwritten).
    """
    unknown = set(cfg) - set(DEFAULT_CANVAS_CFG)
    if unknown:
        raise TypeError(f'unknown digit-canvas parameter(s) {sorted(unknown)}; '
                        f'known: {sorted(DEFAULT_CANVAS_CFG)}')
    cfg = dict(DEFAULT_CANVAS_CFG, **cfg)
    record = _build_record(cfg)
    return _build_atomically(root, record, lambda tmp: [_write_split(tmp, s, cfg)
                                                        for s in ('train', 'test')])


def _build_atomically(root: str, record: dict, write) -> str:
    """Run ``write(tmp)`` into a fresh sibling folder and rename it to ``root``; check the
    ``BUILD.json`` of an existing ``root`` against ``record``."""
    stamp = osp.join(root, 'BUILD.json')
    if not osp.exists(root):
        parent = osp.dirname(osp.abspath(root))
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=osp.basename(root) + '.tmp-', dir=parent)
        try:
            write(tmp)
            with open(osp.join(tmp, 'BUILD.json'), 'w') as f:
                json.dump(record, f, indent=1)
            try:
                os.rename(tmp, root)
            except OSError:
                if not osp.isfile(stamp):  # not another process that won the race
                    raise
        finally:
            if osp.isdir(tmp):  # only the folder this call created
                shutil.rmtree(tmp)
    if not osp.isfile(stamp):
        raise ValueError(f'{root} exists but has no BUILD.json: not a dataset built by mmspike; '
                         'move it away or pass another data_root')
    with open(stamp) as f:
        found = json.load(f)
    if found != record:
        raise ValueError(f'{root} was built with {found}, but {record} was asked for; move it '
                         'away (it is not deleted automatically) or pass another data_root')
    return root


def build_at_first_use(data_root: str, builder, build_cfg: dict) -> str:
    builder(data_root, **(build_cfg or {}))
    return data_root
