"""Transforms that turn event recordings, or HAR-DVS's rendered event frames, into spiking inputs.

Every pipeline ends in ``results['img']`` of shape ``[T, 2, H, W]`` (``float32``), channel 0 the
OFF polarity (``p = 0``; dark pixels of a rendered frame) and channel 1 the ON polarity, packed by
:class:`PackEventInputs` into mmpretrain's ``inputs``. mmpretrain's data preprocessor stacks
samples into ``[B, T, 2, H, W]``; :class:`mmspike.models.EventClsDataPreprocessor` then moves time
first, ``[T, B, 2, H, W]``, the layout every mmspike backbone takes.

Two routes, both registered in ``mmspike.registry.TRANSFORMS``:

- events: :class:`LoadEvents` -> (:class:`SampleEventWindow`) -> :class:`EventsToFrames`
  (per-bin polarity counts, fixed-duration or equal-count bins) -> :class:`ResizeClip` /
  :class:`CenterCropClip` -> :class:`PackEventInputs`;
- rendered frames (the HAR-DVS "rawframes" release): :class:`SampleFrameClip` ->
  :class:`LoadFrameClip` -> :class:`ResizeClip` -> :class:`CenterCropClip` ->
  (:class:`RandomFlipClip`) -> :class:`FramesToPolarity` -> :class:`PackEventInputs`.

Clip sampling is random in training and centred (hence deterministic) with ``test_mode=True``;
upstream samples a random clip at test time too, so its accuracy varies from run to run.
"""
import os
import re
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
from mmcv.transforms import BaseTransform
from mmpretrain.datasets.transforms import PackInputs

from mmspike.registry import TRANSFORMS
from mmspike.datasets.events import event_time_range, load_events

FRAME_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff')


def natural_sort_key(name: str) -> list:
    """Sort ``img_2.png`` before ``img_10.png`` (plain string order would not)."""
    return [int(tok) if tok.isdigit() else tok.lower() for tok in re.split(r'(\d+)', name)]


def list_frames(frame_dir: Union[str, os.PathLike],
                suffixes: Sequence[str] = FRAME_SUFFIXES) -> List[str]:
    """Image files of a rendered-frame folder in natural order.

    Upstream reads ``os.listdir`` order, which the file system chooses; sorting makes a clip the
    same frames on every machine.
    """
    frame_dir = os.fspath(frame_dir)
    if not os.path.isdir(frame_dir):
        raise FileNotFoundError(f'frame folder not found: {frame_dir}')
    names = [n for n in os.listdir(frame_dir) if os.path.splitext(n)[1].lower() in suffixes]
    return [os.path.join(frame_dir, n) for n in sorted(names, key=natural_sort_key)]


def sample_clip_start(num_items: int, clip_len: int, test_mode: bool) -> int:
    """First index of a ``clip_len`` clip out of ``num_items``: centred in test mode, uniformly
    random otherwise (NumPy's global generator, which MMEngine seeds); 0 when the sequence is not
    longer than the clip."""
    if num_items <= clip_len:
        return 0
    if test_mode:
        return (num_items - clip_len) // 2
    return int(np.random.randint(0, num_items - clip_len + 1))


def _clip_shape(img: np.ndarray) -> Tuple[int, int]:
    if img.ndim not in (3, 4):
        raise ValueError(f'expected a clip [T, H, W] or [T, C, H, W], got shape {img.shape}')
    return img.shape[-2], img.shape[-1]


# --------------------------------------------------------------------------------------------
# events
# --------------------------------------------------------------------------------------------
@TRANSFORMS.register_module()
class LoadEvents(BaseTransform):
    """Read ``results['event_path']`` (``.npz`` or ATIS ``.bin``) into ``results['events']``.

    **Required keys:** ``event_path``; ``sensor_size`` unless given here.
    **Added keys:** ``events`` (dict of ``t``, ``x``, ``y``, ``p`` arrays), ``sensor_size``,
    ``ori_shape`` and ``img_shape`` (``(H, W)`` of the sensor).

    Args:
        sensor_size (Sequence[int], optional): ``(width, height)``; overrides the dataset's.
            Defaults to None.
        sort (bool): Sort out-of-order timestamps instead of raising. Defaults to False.
    """

    def __init__(self, sensor_size: Optional[Sequence[int]] = None, sort: bool = False) -> None:
        if sensor_size is not None:
            assert len(sensor_size) == 2 and min(sensor_size) > 0, \
                f'sensor_size must be (width, height) > 0, got {sensor_size}'
            sensor_size = tuple(int(s) for s in sensor_size)
        self.sensor_size = sensor_size
        self.sort = sort

    def _sensor_size(self, results: dict) -> Tuple[int, int]:
        sensor_size = self.sensor_size or results.get('sensor_size')
        if sensor_size is None:
            raise KeyError(f'{type(self).__name__} needs a sensor size (width, height): set it on '
                           "the dataset (results['sensor_size']) or on the transform")
        return tuple(int(s) for s in sensor_size)

    @staticmethod
    def _store(results: dict, events: dict, sensor_size: Tuple[int, int]) -> dict:
        results['events'] = events
        results['sensor_size'] = sensor_size
        results['ori_shape'] = results['img_shape'] = (sensor_size[1], sensor_size[0])
        return results

    def transform(self, results: dict) -> dict:
        sensor_size = self._sensor_size(results)
        events = load_events(results['event_path'], sensor_size, sort=self.sort)
        return self._store(results, events, sensor_size)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(sensor_size={self.sensor_size}, sort={self.sort})'


@TRANSFORMS.register_module()
class SampleEventWindow(BaseTransform):
    """Keep the events of one time window of ``duration`` microseconds.

    The window starts at a uniformly random time in training and is centred on the recording
    with ``test_mode=True``. A recording shorter than ``duration`` is kept whole (its window is
    its own extent, so fixed-duration bins still cover the events). The window ``[start, end)``
    is stored in ``results['event_window']`` for :class:`EventsToFrames`.

    Args:
        duration (int): Window length in microseconds.
        test_mode (bool): Centred (deterministic) window. Defaults to False.
    """

    def __init__(self, duration: int, test_mode: bool = False) -> None:
        assert int(duration) > 0, f'duration must be a positive number of microseconds, ' \
            f'got {duration}'
        self.duration = int(duration)
        self.test_mode = test_mode

    def transform(self, results: dict) -> dict:
        events = results['events']
        t0, t1 = event_time_range(events)
        extent = t1 - t0 + 1
        if extent <= self.duration:
            start, end = t0, t1 + 1
        else:
            slack = extent - self.duration
            start = t0 + (slack // 2 if self.test_mode else int(np.random.randint(0, slack + 1)))
            end = start + self.duration
        lo, hi = np.searchsorted(events['t'], [start, end], side='left')
        results['events'] = {k: v[lo:hi] for k, v in events.items()}
        results['event_window'] = (int(start), int(end))
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(duration={self.duration}, '
                f'test_mode={self.test_mode})')


def events_to_frames(events: dict, sensor_size: Sequence[int], num_bins: int,
                     split_by: str = 'time',
                     window: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """Accumulate events into ``[num_bins, 2, H, W]`` per-bin polarity counts (float32).

    Args:
        events (dict): Time-ordered ``t``, ``x``, ``y``, ``p`` arrays.
        sensor_size (Sequence[int]): ``(width, height)``.
        num_bins (int): Number of frames T.
        split_by (str): ``'time'``: T bins of equal duration over ``window`` (default: from the
            first event to just past the last); ``'count'``: T bins of (nearly) equal event
            counts, the ``k``-th of N events going to bin ``k * T // N`` (sizes differ by at
            most one).
        window (tuple[int, int], optional): ``[start, end)`` in microseconds for ``'time'``.

    Every event inside the window lands in exactly one bin: the frames sum to the event count.
    """
    if split_by not in ('time', 'count'):
        raise ValueError(f"split_by must be 'time' or 'count', got {split_by!r}")
    assert num_bins >= 1, f'num_bins must be >= 1, got {num_bins}'
    width, height = int(sensor_size[0]), int(sensor_size[1])
    t, x, y, p = events['t'], events['x'], events['y'], events['p']
    n = len(t)
    if n and (x.max() >= width or y.max() >= height):
        raise ValueError(f'event coordinates (max x {int(x.max())}, max y {int(y.max())}) outside '
                         f'the sensor size (width, height) = ({width}, {height})')
    if split_by == 'count':
        bins = np.arange(n, dtype=np.int64) * num_bins // max(n, 1)
    else:
        if window is None:
            start, end = event_time_range(events)
            end += 1
        else:
            start, end = int(window[0]), int(window[1])
            if end <= start:
                raise ValueError(f'empty time window [{start}, {end})')
            if n and (t[0] < start or t[-1] >= end):
                raise ValueError(f'events span [{int(t[0])}, {int(t[-1])}] outside the window '
                                 f'[{start}, {end}); cut them with SampleEventWindow first')
        # Integer arithmetic: bin i covers [start + i*D/T, start + (i+1)*D/T), D = end - start.
        bins = (t.astype(np.int64) - start) * num_bins // max(end - start, 1)
    flat = ((bins * 2 + p.astype(np.int64)) * height + y) * width + x
    counts = np.bincount(flat, minlength=num_bins * 2 * height * width)
    return counts.reshape(num_bins, 2, height, width).astype(np.float32)


@TRANSFORMS.register_module()
class EventsToFrames(BaseTransform):
    """Bin ``results['events']`` into T frames of 2 polarity channels: ``results['img']``
    ``[T, 2, H, W]`` float32 counts (see :func:`events_to_frames`).

    **Required keys:** ``events``, ``sensor_size``; optional ``event_window``.
    **Added keys:** ``img``, ``img_shape``. **Removed keys:** ``events`` (no longer needed).

    Args:
        num_bins (int): T, the number of frames. Defaults to 8.
        split_by (str): ``'time'`` (fixed-duration bins) or ``'count'`` (equal-count bins).
            Defaults to ``'time'``.
        max_count (int, optional): Clip each pixel's count to this value (e.g. 1 for binary
            frames). Defaults to None (raw counts, which sum to the number of events).
    """

    def __init__(self, num_bins: int = 8, split_by: str = 'time',
                 max_count: Optional[int] = None) -> None:
        assert num_bins >= 1, f'num_bins must be >= 1, got {num_bins}'
        assert split_by in ('time', 'count'), \
            f"split_by must be 'time' or 'count', got {split_by!r}"
        assert max_count is None or max_count >= 1, f'max_count must be >= 1, got {max_count}'
        self.num_bins = num_bins
        self.split_by = split_by
        self.max_count = max_count

    def transform(self, results: dict) -> dict:
        frames = events_to_frames(results.pop('events'), results['sensor_size'], self.num_bins,
                                  self.split_by, results.get('event_window'))
        if self.max_count is not None:
            np.minimum(frames, self.max_count, out=frames)
        results['img'] = frames
        results['img_shape'] = frames.shape[-2:]
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(num_bins={self.num_bins}, split_by={self.split_by!r}, '
                f'max_count={self.max_count})')


# --------------------------------------------------------------------------------------------
# rendered frames (HAR-DVS "rawframes")
# --------------------------------------------------------------------------------------------
@TRANSFORMS.register_module()
class SampleFrameClip(BaseTransform):
    """Choose ``clip_len`` consecutive frames of a rendered-frame folder.

    Training draws the start uniformly; ``test_mode=True`` takes the centred clip, start
    ``(N - clip_len) // 2``. A folder with fewer frames than ``clip_len`` gives all its frames
    followed by padding: empty frames (``'zeros'``, what upstream does) or the clip again from
    its start (``'loop'``).

    **Required keys:** ``frame_dir`` (or ``frame_paths``, a sorted list).
    **Added keys:** ``frame_paths``, ``total_frames``, ``frame_inds`` (``-1`` marks padding),
    ``clip_paths`` (None for padding).

    Args:
        clip_len (int): T. Defaults to 8.
        test_mode (bool): Centred clip. Defaults to False.
        short_clip (str): ``'zeros'`` or ``'loop'``. Defaults to ``'zeros'``.
    """

    def __init__(self, clip_len: int = 8, test_mode: bool = False,
                 short_clip: str = 'zeros') -> None:
        assert clip_len >= 1, f'clip_len must be >= 1, got {clip_len}'
        assert short_clip in ('zeros', 'loop'), \
            f"short_clip must be 'zeros' or 'loop', got {short_clip!r}"
        self.clip_len = clip_len
        self.test_mode = test_mode
        self.short_clip = short_clip

    def transform(self, results: dict) -> dict:
        paths = results.get('frame_paths')
        if paths is None:
            paths = list_frames(results['frame_dir'])
        if not paths:
            raise FileNotFoundError(f"no frames ({', '.join(FRAME_SUFFIXES)}) in "
                                    f"{results.get('frame_dir')}")
        n = len(paths)
        start = sample_clip_start(n, self.clip_len, self.test_mode)
        inds = np.arange(start, start + self.clip_len)
        if n < self.clip_len:
            inds = inds % n if self.short_clip == 'loop' else np.where(inds < n, inds, -1)
        results['frame_paths'] = paths
        results['total_frames'] = n
        results['frame_inds'] = inds
        results['clip_paths'] = [paths[i] if i >= 0 else None for i in inds]
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(clip_len={self.clip_len}, test_mode={self.test_mode}, '
                f'short_clip={self.short_clip!r})')


@TRANSFORMS.register_module()
class LoadFrameClip(BaseTransform):
    """Read the frames of ``results['clip_paths']`` as 8-bit grayscale: ``results['img']``
    ``[T, H, W]`` uint8 and ``results['clip_valid']`` ``[T]`` bool (False for padding frames,
    which stay empty through :class:`FramesToPolarity`).

    Grayscale conversion is PIL's ``'L'`` mode (ITU-R 601-2 luma), as upstream.
    """

    def transform(self, results: dict) -> dict:
        from PIL import Image
        clip_paths = results['clip_paths']
        frames, shape = [], None
        for path in clip_paths:
            if path is None:
                frames.append(None)
                continue
            with Image.open(path) as im:
                frame = np.asarray(im.convert('L'))
            if shape is not None and frame.shape != shape:
                raise ValueError(f'frame {path} is {frame.shape[::-1]} (w, h) but earlier frames '
                                 f'of the clip are {shape[::-1]}')
            shape = frame.shape
            frames.append(frame)
        if shape is None:
            raise ValueError(f"clip of {results.get('frame_dir')} has no real frame")
        valid = np.array([f is not None for f in frames])
        # Padding frames are filled white here and zeroed after binarisation (clip_valid).
        img = np.stack([f if f is not None else np.full(shape, 255, np.uint8) for f in frames])
        results['img'] = img
        results['clip_valid'] = valid
        results['ori_shape'] = results['img_shape'] = shape
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}()'


def _resize_plane(plane: np.ndarray, size: Tuple[int, int], interpolation: str) -> np.ndarray:
    """Resize one ``[H, W]`` plane to ``size`` (w, h): PIL for uint8 (as torchvision does on
    PIL images, so rendered frames match upstream), OpenCV for float counts."""
    if plane.dtype == np.uint8:
        from PIL import Image
        codes = {'nearest': Image.NEAREST, 'bilinear': Image.BILINEAR,
                 'bicubic': Image.BICUBIC, 'area': Image.BOX, 'lanczos': Image.LANCZOS}
        return np.asarray(Image.fromarray(plane).resize(size, codes[interpolation]))
    import cv2
    codes = {'nearest': cv2.INTER_NEAREST, 'bilinear': cv2.INTER_LINEAR,
             'bicubic': cv2.INTER_CUBIC, 'area': cv2.INTER_AREA,
             'lanczos': cv2.INTER_LANCZOS4}
    return cv2.resize(plane, size, interpolation=codes[interpolation])


@TRANSFORMS.register_module()
class ResizeClip(BaseTransform):
    """Resize every frame (and channel) of ``results['img']`` (``[T, H, W]`` or
    ``[T, C, H, W]``).

    Args:
        scale (int | Sequence[int]): An int resizes the shorter side to it keeping the aspect
            ratio, the longer side truncated as torchvision's ``Resize(int)`` does (HAR-DVS
            346x260 -> 340x256); ``(w, h)`` resizes to exactly that.
        interpolation (str): ``'nearest'``, ``'bilinear'``, ``'bicubic'`` (upstream), ``'area'``
            or ``'lanczos'``. Defaults to ``'bicubic'``.
    """

    def __init__(self, scale: Union[int, Sequence[int]],
                 interpolation: str = 'bicubic') -> None:
        if isinstance(scale, int):
            assert scale > 0, f'scale must be > 0, got {scale}'
        else:
            assert len(scale) == 2 and min(scale) > 0, \
                f'scale must be an int or (w, h), got {scale}'
            scale = tuple(int(s) for s in scale)
        assert interpolation in ('nearest', 'bilinear', 'bicubic', 'area', 'lanczos'), \
            f'unknown interpolation {interpolation!r}'
        self.scale = scale
        self.interpolation = interpolation

    def target_size(self, h: int, w: int) -> Tuple[int, int]:
        """Output ``(w, h)`` for an ``h x w`` input."""
        if not isinstance(self.scale, int):
            return self.scale
        s = self.scale
        return (s, int(s * h / w)) if w <= h else (int(s * w / h), s)

    def transform(self, results: dict) -> dict:
        img = results['img']
        h, w = _clip_shape(img)
        size = self.target_size(h, w)
        if size != (w, h):
            lead = img.shape[:-2]
            planes = img.reshape(-1, h, w)
            out = np.stack([_resize_plane(pl, size, self.interpolation) for pl in planes])
            img = out.reshape(*lead, size[1], size[0])
        results['img'] = img
        results['img_shape'] = img.shape[-2:]
        results['scale_factor'] = (size[0] / w, size[1] / h)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(scale={self.scale}, '
                f'interpolation={self.interpolation!r})')


@TRANSFORMS.register_module()
class CenterCropClip(BaseTransform):
    """Crop the centre ``crop_size`` of every frame of ``results['img']``; offsets rounded as
    torchvision's ``CenterCrop``.

    Args:
        crop_size (int | Sequence[int]): ``s`` for ``s x s`` or ``(w, h)``.
    """

    def __init__(self, crop_size: Union[int, Sequence[int]]) -> None:
        if isinstance(crop_size, int):
            crop_size = (crop_size, crop_size)
        assert len(crop_size) == 2 and min(crop_size) > 0, \
            f'crop_size must be an int or (w, h) > 0, got {crop_size}'
        self.crop_size = tuple(int(c) for c in crop_size)

    def transform(self, results: dict) -> dict:
        img = results['img']
        h, w = _clip_shape(img)
        cw, ch = self.crop_size
        if cw > w or ch > h:
            raise ValueError(f'crop {cw}x{ch} (w x h) is larger than the frames {w}x{h}; '
                             'resize first (ResizeClip)')
        top, left = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))
        results['img'] = np.ascontiguousarray(img[..., top:top + ch, left:left + cw])
        results['img_shape'] = (ch, cw)
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(crop_size={self.crop_size})'


@TRANSFORMS.register_module()
class RandomFlipClip(BaseTransform):
    """Flip the whole clip horizontally with probability ``prob``.

    One draw per clip, so all T frames stay consistent (upstream's per-image torchvision flip
    mirrors each frame independently).

    Args:
        prob (float): Defaults to 0.5.
    """

    def __init__(self, prob: float = 0.5) -> None:
        assert 0.0 <= prob <= 1.0, f'prob must be in [0, 1], got {prob}'
        self.prob = prob

    def transform(self, results: dict) -> dict:
        flip = bool(np.random.rand() < self.prob)
        if flip:
            results['img'] = np.ascontiguousarray(results['img'][..., ::-1])
        results['flip'] = flip
        results['flip_direction'] = 'horizontal' if flip else None
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(prob={self.prob})'


@TRANSFORMS.register_module()
class FramesToPolarity(BaseTransform):
    """Binarise grayscale rendered frames ``[T, H, W]`` into 2 polarity channels
    ``[T, 2, H, W]`` float32, as the E-SpikeFormer HAR-DVS code does.

    With ``g`` the gray level in [0, 1] (uint8 / 255): channel 0 is ``g < low`` (dark pixels);
    channel 1 is ``g' > high`` where ``g' = high`` wherever ``g > cap`` (bright background is
    dropped, so only mid-gray pixels fire). Padding frames (``results['clip_valid']`` False) are
    all zeros.

    Args:
        low (float): Defaults to 0.12.
        high (float): Defaults to 0.3.
        cap (float): Defaults to 0.78.
    """

    def __init__(self, low: float = 0.12, high: float = 0.3, cap: float = 0.78) -> None:
        assert 0.0 <= low <= 1.0 and 0.0 <= high <= cap <= 1.0, \
            f'need 0 <= low <= 1 and 0 <= high <= cap <= 1, got low={low}, high={high}, cap={cap}'
        self.low, self.high, self.cap = low, high, cap

    def transform(self, results: dict) -> dict:
        img = results['img']
        if img.ndim != 3:
            raise ValueError(f'FramesToPolarity expects grayscale frames [T, H, W], got shape '
                             f'{img.shape}')
        g = img.astype(np.float32) / 255.0 if img.dtype == np.uint8 else img.astype(np.float32)
        out = np.empty((img.shape[0], 2) + img.shape[1:], np.float32)
        out[:, 0] = g < self.low
        out[:, 1] = np.where(g > self.cap, np.float32(self.high), g) > self.high
        valid = results.get('clip_valid')
        if valid is not None:
            out[~np.asarray(valid, bool)] = 0.0
        results['img'] = out
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(low={self.low}, high={self.high}, cap={self.cap})')


@TRANSFORMS.register_module()
class PackEventInputs(PackInputs):
    """:class:`mmpretrain.datasets.PackInputs` for ``[T, C, H, W]`` event clips.

    Checks the clip is 4-D (mmpretrain's packer would permute a 3-D array as an HWC image) and
    hands it over as a float32 tensor; mmpretrain's collate/preprocessor stacks a batch into
    ``[B, T, C, H, W]``. Meta keys add ``frame_inds`` and ``event_window`` to mmpretrain's.
    """
    DEFAULT_META_KEYS = PackInputs.DEFAULT_META_KEYS + ('frame_inds', 'event_window',
                                                        'total_frames')

    def __init__(self, input_key: str = 'img', algorithm_keys: Sequence[str] = (),
                 meta_keys: Sequence[str] = DEFAULT_META_KEYS) -> None:
        super().__init__(input_key=input_key, algorithm_keys=algorithm_keys, meta_keys=meta_keys)

    def transform(self, results: dict) -> dict:
        img = results.get(self.input_key)
        if img is None:
            raise KeyError(f'PackEventInputs: no {self.input_key!r} in the results')
        if img.ndim != 4:
            raise ValueError(f'PackEventInputs expects a [T, C, H, W] clip, got shape '
                             f'{tuple(img.shape)}; end the pipeline with EventsToFrames or '
                             'FramesToPolarity')
        results[self.input_key] = np.ascontiguousarray(img, dtype=np.float32)
        return super().transform(results)
