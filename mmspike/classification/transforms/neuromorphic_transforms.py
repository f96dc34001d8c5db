"""Loading labelled event clips of neuromorphic datasets (CIFAR10-DVS, DVS128 Gesture)."""
from typing import Optional, Sequence

import numpy as np

from mmspike.datasets.aedat_legacy import dvs128_to_spikingjelly
from mmspike.datasets.events import EventFileError, load_events
from mmspike.registry import TRANSFORMS
from .event_transforms import LoadEvents

EVENT_REMAPS = ('spikingjelly', )


@TRANSFORMS.register_module()
class LoadEventClip(LoadEvents):
    """Read ``results['event_path']`` (``.aedat``, ``.aedat4``, ``.npz`` or ATIS ``.bin``) and
    keep the events of ``results['clip_window']`` (``[start, end)`` microseconds) when the sample
    has one, e.g. one labelled gesture of a DVS128 Gesture recording.

    **Required keys:** ``event_path``; ``sensor_size`` unless given here; optional
    ``clip_window`` and ``event_remap`` (``'spikingjelly'``: see
    :func:`mmspike.datasets.aedat_legacy.dvs128_to_spikingjelly`).
    **Added keys:** ``events``, ``sensor_size``, ``ori_shape``, ``img_shape`` and, for a clip,
    ``event_window`` (so :class:`EventsToFrames` bins over the labelled span).

    The decoded recording of the last file is kept on the transform, so the clips of one
    recording read in order decode it once (a DVS128 Gesture recording holds about 12 clips).

    Args:
        sensor_size (Sequence[int], optional): ``(width, height)``; overrides the dataset's.
            Defaults to None.
        sort (bool): Sort out-of-order timestamps instead of raising. Defaults to False.
    """

    def __init__(self, sensor_size: Optional[Sequence[int]] = None, sort: bool = False) -> None:
        super().__init__(sensor_size, sort)
        self._cached = (None, None)

    def _load(self, path: str, sensor_size: tuple) -> dict:
        key = (path, sensor_size)
        if self._cached[0] != key:
            self._cached = (key, load_events(path, sensor_size, sort=self.sort))
        return self._cached[1]

    def transform(self, results: dict) -> dict:
        sensor_size = self._sensor_size(results)
        path = results['event_path']
        events = self._load(path, sensor_size)
        window = results.get('clip_window')
        if window is not None:
            start, end = int(window[0]), int(window[1])
            lo, hi = np.searchsorted(events['t'], [start, end], side='left')
            events = {k: v[lo:hi] for k, v in events.items()}
            if hi == lo:
                raise EventFileError(f'{path}: the clip [{start}, {end}) us holds no events; it '
                                     'would be an all-zero clip that still carries its label')
            results['event_window'] = (start, end)
        remap = results.get('event_remap')
        if remap is not None:
            if remap not in EVENT_REMAPS:
                raise ValueError(f'unknown event_remap {remap!r}; expected one of {EVENT_REMAPS}')
            if sensor_size[0] != sensor_size[1]:
                raise ValueError(f"event_remap='spikingjelly' swaps x and y: it needs a square "
                                 f'sensor, got {sensor_size}')
            events = dvs128_to_spikingjelly(events, sensor_size[0])
        return self._store(results, events, sensor_size)
