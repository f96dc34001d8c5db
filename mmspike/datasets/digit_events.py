"""Digit events: event-camera streams made from the real scikit-learn digits, with a held-out split.

A small event-classification set that two CPU cores learn in minutes, read through the HAR-DVS
route (:class:`~mmspike.classification.datasets.HARDVSDataset` -> ``LoadEvents`` -> ``EventsToFrames`` -> T frames). No public
event dataset is small and permissive enough to ship, so the streams are **derived** with a
documented event-camera model, N-MNIST's recording procedure (Orchard et al. 2015) applied in
simulation: the sensor makes three saccades over a static digit and every pixel emits events
where its log intensity changes.

The converter (:func:`digit_to_events`, deterministic, NumPy only):

1. the 8x8 digit (intensities 0..16) is seen by a ``34 x 34`` sensor at ``scale`` (3.5) pixels
   per digit pixel, centred; intensity at a sensor pixel is the bilinear interpolation of the
   digit at that pixel's centre (0 outside the digit), over 16;
2. the image moves along a triangle, three straight saccades of ``saccade_ms`` (100 ms) each,
   vertices ``(0, 0) -> (+2, +2) -> (-2, +2) -> (0, 0)`` sensor pixels (x, y), sampled every
   ``step_us`` (2 ms);
3. each pixel keeps a reference log intensity ``L_ref`` (initialised to the first frame); with
   ``L = log(I + eps)`` (``eps`` 0.1), when ``|L - L_ref| >= C`` it emits
   ``floor(|L - L_ref| / C)`` events of polarity ON (1) if ``L > L_ref`` else OFF (0) at that
   time step and moves ``L_ref`` by that many ``C`` toward ``L``. ``C`` (0.3) is the contrast
   threshold of a DVS pixel.

Streams follow the compact-file convention (``t`` us from 0, ``x``, ``y``, ``p``; sorted by
time, then pixel). :func:`build_digit_events` writes
``events/{train,test}/<digit index>.npz`` and ``ann_{train,test}.txt`` (``<path> <label>``) under
``data/digit_events``, with the split of :class:`~mmspike.classification.datasets.DigitsDataset` (1,347 / 450; ``max_per_split``
keeps only the first digits of each, for quick tests), and
:class:`~mmspike.classification.datasets.DigitEventsDataset` builds it at first use.
"""
import os
import os.path as osp
from typing import Tuple

import numpy as np

from .digit_canvas import DIGIT_CLASSES, _build_atomically, digits_split
from .events import save_npz_events

DIGIT_EVENTS_VERSION = 1
DEFAULT_EVENTS_ROOT = 'data/digit_events'
DIGIT_EVENTS_SENSOR = (34, 34)  # (width, height), as N-MNIST
DEFAULT_EVENTS_CFG = dict(scale=3.5, saccade_ms=100, step_us=2000, amplitude=2.0,
                          contrast=0.3, eps=0.1, test_ratio=0.25,
                          max_per_split=None)


def _tent_weights(coords: np.ndarray, n: int) -> np.ndarray:
    """``[..., n]`` linear-interpolation weights of continuous coordinates on pixel centres
    ``0..n-1`` (zero beyond one pixel outside)."""
    return np.maximum(0.0, 1.0 - np.abs(coords[..., None] - np.arange(n, dtype=np.float64)))


def saccade_offsets(saccade_ms: int = 100, step_us: int = 2000,
                    amplitude: float = 2.0) -> Tuple[np.ndarray, np.ndarray]:
    """Times (us) and ``[K, 2]`` (x, y) image offsets of the three-saccade triangle."""
    a = float(amplitude)
    vertices = np.array([(0, 0), (a, a), (-a, a), (0, 0)], np.float64)
    steps = int(saccade_ms * 1000 // step_us)
    if steps < 1:
        raise ValueError(f'step_us {step_us} is longer than a saccade ({saccade_ms} ms)')
    frac = np.arange(steps) / steps
    path = [vertices[i] + frac[:, None] * (vertices[i + 1] - vertices[i]) for i in range(3)]
    offsets = np.concatenate(path + [vertices[-1:]])
    return np.arange(len(offsets), dtype=np.int64) * int(step_us), offsets


def digit_to_events(digit: np.ndarray, scale: float = 3.5, saccade_ms: int = 100,
                    step_us: int = 2000, amplitude: float = 2.0, contrast: float = 0.3,
                    eps: float = 0.1, sensor_size: Tuple[int, int] = DIGIT_EVENTS_SENSOR,
                    **unused) -> dict:
    """The event stream of a 34x34 sensor making three saccades over an 8x8 digit.

    See the module docstring for the model and the meaning of the arguments.

    Returns:
        dict: ``t`` (int64, us), ``x``, ``y`` (int64), ``p`` (uint8, 1 = ON).
    """
    digit = np.asarray(digit, np.float64)
    if digit.shape != (8, 8):
        raise ValueError(f'digit must be 8x8, got shape {digit.shape}')
    if not contrast > 0:
        raise ValueError(f'contrast must be > 0, got {contrast}')
    w, h = sensor_size
    times, offsets = saccade_offsets(saccade_ms, step_us, amplitude)
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    # Bilinear sampling is separable: image[k] = Wy[k] @ digit @ Wx[k].T, with the weights of
    # each sensor pixel centre in digit coordinates (digit pixel centres at 0..7).
    gx = (np.arange(w)[None] - cx - offsets[:, :1]) / scale + 3.5
    gy = (np.arange(h)[None] - cy - offsets[:, 1:]) / scale + 3.5
    image = np.einsum('kyi,ij,kxj->kyx', _tent_weights(gy, 8), digit, _tent_weights(gx, 8))
    log_i = np.log(image / 16.0 + eps)
    ref = log_i[0].copy()
    ts, xs, ys, ps = [], [], [], []
    for t, frame in zip(times[1:], log_i[1:]):
        diff = frame - ref
        # (the 1e-9 keeps a change of exactly k*C, e.g. back to a plateau, from firing k-1
        # events through rounding)
        n = np.floor(np.abs(diff) / contrast + 1e-9).astype(np.int64)
        if not n.any():
            continue
        iy, ix = np.nonzero(n)
        counts = n[iy, ix]
        pol = (diff[iy, ix] > 0).astype(np.uint8)
        ref[iy, ix] += np.sign(diff[iy, ix]) * counts * contrast
        ts.append(np.full(counts.sum(), t, np.int64))
        xs.append(np.repeat(ix, counts))
        ys.append(np.repeat(iy, counts))
        ps.append(np.repeat(pol, counts))
    if not ts:
        return dict(t=np.zeros(0, np.int64), x=np.zeros(0, np.int64), y=np.zeros(0, np.int64),
                    p=np.zeros(0, np.uint8))
    return dict(t=np.concatenate(ts), x=np.concatenate(xs), y=np.concatenate(ys),
                p=np.concatenate(ps))


def build_digit_events(root: str = DEFAULT_EVENTS_ROOT, **cfg) -> str:
    """Make sure ``root`` holds the digit event streams of ``cfg`` (see the module docstring).

    Args:
        root (str): Output folder. Defaults to ``'data/digit_events'``.
        **cfg: Overrides of :data:`DEFAULT_EVENTS_CFG`.

    Returns:
        str: ``root``.

    Raises:
        ValueError: ``root`` exists but was built with other parameters (it is never deleted).
    """
    unknown = set(cfg) - set(DEFAULT_EVENTS_CFG)
    if unknown:
        raise TypeError(f'unknown digit-events parameter(s) {sorted(unknown)}; '
                        f'known: {sorted(DEFAULT_EVENTS_CFG)}')
    cfg = dict(DEFAULT_EVENTS_CFG, **cfg)
    record = dict(version=DIGIT_EVENTS_VERSION, sensor_size=list(DIGIT_EVENTS_SENSOR), **cfg)

    def write(tmp: str) -> None:
        for split in ('train', 'test'):
            images, labels, index = digits_split(split, cfg['test_ratio'])
            keep = slice(cfg['max_per_split'])  # None: all; else the first digits (quick tests)
            images, labels, index = images[keep], labels[keep], index[keep]
            os.makedirs(osp.join(tmp, 'events', split))
            lines = []
            for digit, label, i in zip(images, labels, index):
                rel = f'events/{split}/{i:04d}.npz'
                ev = digit_to_events(digit, **cfg)
                if not len(ev['t']):
                    raise ValueError(f'digit {i} gives no events with {cfg}')
                save_npz_events(osp.join(tmp, rel), ev)
                lines.append(f'{rel} {int(label)}\n')
            with open(osp.join(tmp, f'ann_{split}.txt'), 'w') as f:
                f.writelines(lines)

    return _build_atomically(root, record, write)
