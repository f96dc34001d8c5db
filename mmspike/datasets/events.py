"""Readers for event-camera recordings, with strict validation.

An event stream is a dict of four equal-length 1-D numpy arrays (the "compact event file" convention
of spikingjelly and the HAR-DVS release):

- ``t`` (``int64``): timestamps in microseconds, non-negative and non-decreasing;
- ``x``, ``y`` (``int64`` here): pixel coordinates, ``0 <= x < width``, ``0 <= y < height``;
- ``p`` (``uint8``): polarity, ``0`` = OFF (darker), ``1`` = ON (brighter).

Sensor sizes are ``(width, height)`` everywhere in mmspike (HAR-DVS: ``(346, 260)``, N-MNIST:
``(34, 34)``). Every reader raises :class:`EventFileError` (a ``ValueError``) naming the file and
what is wrong with it, rather than returning a stream that would bin into silently wrong frames.
A file without a single event is an error too (``allow_empty=True`` accepts it with a warning):
it would become an all-zero clip that still carries its label.

Formats: ``.npz`` (compact t/x/y/p arrays), ``.bin`` (ATIS/N-MNIST, 5 bytes per event) and
``.aedat4`` (AEDAT 4.0 of iniVation DV cameras: DVXplorer, DAVIS346), decoded by the ``aedat``
package (:mod:`mmspike.datasets.aedat4`).
"""
import os
import warnings
import zipfile
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np

EVENT_KEYS = ('t', 'x', 'y', 'p')
ATIS_BYTES_PER_EVENT = 5
# ATIS/N-MNIST: an event with y == 240 is not an event but a timestamp-overflow marker that adds
# 2**13 us to every later timestamp (the 23-bit field otherwise wraps after ~8.4 s).
ATIS_OVERFLOW_Y = 240
ATIS_OVERFLOW_US = 1 << 13

PathLike = Union[str, os.PathLike]
Events = Dict[str, np.ndarray]


class EventFileError(ValueError):
    """An event file or event stream is malformed (truncated, wrong keys, bad values)."""


def _where(source: Optional[PathLike]) -> str:
    return f'{os.fspath(source)}: ' if source is not None else ''


def validate_events(events: Events,
                    sensor_size: Optional[Sequence[int]] = None,
                    source: Optional[PathLike] = None,
                    sort: bool = False) -> Events:
    """Check an event stream and return it in canonical dtypes.

    Args:
        events (dict): Arrays under the keys ``t``, ``x``, ``y``, ``p`` (other keys are ignored).
        sensor_size (Sequence[int], optional): ``(width, height)``; when given, every coordinate
            must lie inside it. Defaults to None (coordinates are only checked to be >= 0).
        source (PathLike, optional): File the stream came from, for error messages.
            Defaults to None.
        sort (bool): Stable-sort a stream whose timestamps go backwards instead of raising.
            Binning by duration, windowing and equal-count binning all assume time order.
            Defaults to False.

    Returns:
        dict: ``t`` int64, ``x``/``y`` int64, ``p`` uint8 (0/1), all 1-D and the same length.

    Raises:
        EventFileError: naming the file and the problem.
    """
    where = _where(source)
    missing = [k for k in EVENT_KEYS if k not in events]
    if missing:
        raise EventFileError(f'{where}event stream lacks key(s) {missing}; expected keys '
                             f'{list(EVENT_KEYS)}, found {sorted(events)}')
    arrays = {k: np.asarray(events[k]) for k in EVENT_KEYS}
    for k, a in arrays.items():
        if a.ndim != 1:
            raise EventFileError(f'{where}event array {k!r} must be 1-D, got shape {a.shape}')
        if not (np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_):
            raise EventFileError(f'{where}event array {k!r} must hold integers, got {a.dtype}')
    lengths = {k: len(a) for k, a in arrays.items()}
    if len(set(lengths.values())) != 1:
        raise EventFileError(f'{where}event arrays have mismatched lengths {lengths}')

    t = arrays['t'].astype(np.int64)
    x = arrays['x'].astype(np.int64)
    y = arrays['y'].astype(np.int64)
    p = arrays['p'].astype(np.int64)
    if len(t):
        if t.min() < 0:
            i = int(np.argmax(t < 0))
            raise EventFileError(f'{where}negative timestamp {int(t[i])} at event {i}; '
                                 'timestamps must be >= 0 (microseconds)')
        polarities = np.unique(p)
        if np.isin(polarities, (-1, 1)).all() and -1 in polarities:
            p = (p > 0).astype(np.int64)  # the +-1 convention of some datasets
        elif not np.isin(polarities, (0, 1)).all():
            raise EventFileError(f'{where}polarity must be 0/1 (or -1/1), found values '
                                 f'{polarities[:8].tolist()}')
        for name, a, size in (('x', x, 0), ('y', y, 1)):
            if a.min() < 0:
                raise EventFileError(f'{where}negative {name} coordinate {int(a.min())}')
            if sensor_size is not None and a.max() >= sensor_size[size]:
                limit = sensor_size[size]
                raise EventFileError(
                    f'{where}{name} coordinate {int(a.max())} outside the sensor: {name} must be '
                    f'< {limit} for sensor size (width, height) = {tuple(sensor_size)}')
        backwards = np.flatnonzero(np.diff(t) < 0)
        if len(backwards):
            if not sort:
                i = int(backwards[0])
                raise EventFileError(
                    f'{where}timestamps are not in time order ({len(backwards)} step(s) go back, '
                    f'first at event {i + 1}: {int(t[i])} -> {int(t[i + 1])}); pass sort=True '
                    'to sort them')
            order = np.argsort(t, kind='stable')
            t, x, y, p = t[order], x[order], y[order], p[order]
    return dict(t=t, x=x, y=y, p=p.astype(np.uint8))


def check_not_empty(events: Events, source: PathLike, allow_empty: bool = False) -> Events:
    """Refuse (or, with ``allow_empty``, warn about) a recording without a single event."""
    if len(events['t']) == 0:
        msg = (f'{_where(source)}the recording holds no events; binned it would be an all-zero '
               'clip')
        if not allow_empty:
            raise EventFileError(msg + ' (pass allow_empty=True to accept empty recordings)')
        warnings.warn(msg)
    return events


def load_npz_events(path: PathLike,
                    sensor_size: Optional[Sequence[int]] = None,
                    sort: bool = False, allow_empty: bool = False) -> Events:
    """Read a compact ``.npz`` event file (keys ``t``, ``x``, ``y``, ``p``), e.g. HAR-DVS's.

    Args:
        path (PathLike): The ``.npz`` file.
        sensor_size (Sequence[int], optional): ``(width, height)`` to check coordinates against.
            Defaults to None.
        sort (bool): See :func:`validate_events`. Defaults to False.
        allow_empty (bool): Accept a file without events (with a warning) instead of raising.
            Defaults to False.

    Returns:
        dict: The validated stream (see :func:`validate_events`).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'event file not found: {path}')
    try:
        # allow_pickle=False: an event file holds plain arrays, never objects to unpickle.
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise EventFileError(f'{path}: holds a single {type(loaded).__name__} (.npy data), '
                                 "not an .npz archive of 't', 'x', 'y', 'p' arrays")
        with loaded as npz:
            # Read every array now: a truncated member only fails when it is decompressed.
            events = {k: npz[k] for k in npz.files}
    except EventFileError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
        raise EventFileError(f'{path}: not a readable .npz event file (truncated or corrupt?): '
                             f'{type(e).__name__}: {e}') from e
    except Exception as e:  # zlib.error and friends from a damaged compressed member
        raise EventFileError(f'{path}: failed to decode the .npz event file: '
                             f'{type(e).__name__}: {e}') from e
    events = validate_events(events, sensor_size, source=path, sort=sort)
    return check_not_empty(events, path, allow_empty)


def decode_atis_bin(data: bytes, source: Optional[PathLike] = None) -> Events:
    """Decode the ATIS/N-MNIST binary format: 5 bytes per event.

    Byte 0 is x, byte 1 is y, bit 7 of byte 2 is the polarity, and the remaining 23 bits (byte 2
    bits 0-6, byte 3, byte 4, big-endian) are the timestamp in microseconds. Events with
    ``y == 240`` are timestamp-overflow markers (see ``ATIS_OVERFLOW_US``) and are dropped.
    """
    if len(data) % ATIS_BYTES_PER_EVENT:
        raise EventFileError(
            f'{_where(source)}size {len(data)} bytes is not a multiple of '
            f'{ATIS_BYTES_PER_EVENT} (bytes per ATIS event): the file is truncated or not in the '
            'ATIS/N-MNIST format')
    raw = np.frombuffer(data, dtype=np.uint8).reshape(-1, ATIS_BYTES_PER_EVENT).astype(np.int64)
    x, y = raw[:, 0], raw[:, 1]
    p = raw[:, 2] >> 7
    t = ((raw[:, 2] & 0x7F) << 16) | (raw[:, 3] << 8) | raw[:, 4]
    overflow = y == ATIS_OVERFLOW_Y
    if overflow.any():
        t = t + np.cumsum(overflow) * ATIS_OVERFLOW_US
        keep = ~overflow
        t, x, y, p = t[keep], x[keep], y[keep], p[keep]
    return dict(t=t, x=x, y=y, p=p)


def load_atis_bin(path: PathLike,
                  sensor_size: Optional[Sequence[int]] = (34, 34),
                  sort: bool = False, allow_empty: bool = False,
                  num_events: Optional[int] = None,
                  min_duration_us: Optional[int] = None) -> Events:
    """Read an ATIS/N-MNIST ``.bin`` recording (see :func:`decode_atis_bin`).

    The format has no header and no event count, so a file cut on an event boundary (a multiple
    of 5 bytes) decodes as a valid shorter recording. Pass what is known about the recording
    (``num_events`` from an index, or ``min_duration_us``: N-MNIST samples are three saccades
    over about 300 ms) and a shorter file is refused instead of losing events silently.

    Args:
        path (PathLike): The ``.bin`` file.
        sensor_size (Sequence[int], optional): ``(width, height)``. Defaults to ``(34, 34)``
            (N-MNIST); None skips the bound check.
        sort (bool): See :func:`validate_events`. Defaults to False.
        allow_empty (bool): See :func:`load_npz_events`. Defaults to False.
        num_events (int, optional): The exact number of events the file must hold (overflow
            markers not counted). Defaults to None (not checked).
        min_duration_us (int, optional): The least time span (first to last event, in
            microseconds) of a complete recording. Defaults to None (not checked).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'event file not found: {path}')
    events = decode_atis_bin(path.read_bytes(), source=path)
    events = check_not_empty(validate_events(events, sensor_size, source=path, sort=sort), path,
                             allow_empty)
    n = len(events['t'])
    if num_events is not None and n != num_events:
        raise EventFileError(f'{path}: holds {n} events, expected {num_events} (a file truncated '
                             f'on an event boundary, or the wrong file?)')
    if min_duration_us is not None:
        first, last = event_time_range(events)
        if last - first < min_duration_us:
            raise EventFileError(
                f'{path}: its {n} events span {last - first} us, less than min_duration_us='
                f'{min_duration_us}: the recording is truncated (an ATIS .bin cut on an event '
                f'boundary still decodes)')
    return events


def load_events(path: PathLike,
                sensor_size: Optional[Sequence[int]] = None,
                sort: bool = False, allow_empty: bool = False) -> Events:
    """Read an event file by its suffix: ``.npz`` (compact t/x/y/p), ``.bin`` (ATIS/N-MNIST) or
    ``.aedat4`` (AEDAT 4.0, the polarity events of its first event stream) or ``.aedat`` (jAER
    AEDAT 2.0 with DVS128 addresses, or cAER AEDAT 3.1: :mod:`mmspike.datasets.aedat_legacy`).

    Args:
        path (PathLike): The file.
        sensor_size (Sequence[int], optional): ``(width, height)`` to check coordinates against.
            Defaults to None.
        sort (bool): See :func:`validate_events`. Defaults to False.
        allow_empty (bool): See :func:`load_npz_events`. Defaults to False.
    """
    suffix = Path(path).suffix.lower()
    if suffix == '.npz':
        return load_npz_events(path, sensor_size, sort=sort, allow_empty=allow_empty)
    if suffix == '.bin':
        return load_atis_bin(path, sensor_size, sort=sort, allow_empty=allow_empty)
    if suffix == '.aedat4':
        from .aedat4 import load_aedat4_events
        return load_aedat4_events(path, sensor_size, sort=sort, allow_empty=allow_empty)
    if suffix == '.aedat':
        from .aedat_legacy import load_aedat_legacy
        return load_aedat_legacy(path, sensor_size, sort=sort, allow_empty=allow_empty)
    raise EventFileError(f'{path}: unsupported event file suffix {suffix!r}; expected '
                         "'.npz' (t, x, y, p arrays), '.bin' (ATIS/N-MNIST), '.aedat' (AEDAT "
                         "2.0 / 3.1, DVS128 addresses) or '.aedat4' (AEDAT 4.0)")


def save_npz_events(path: PathLike, events: Events, compress: bool = True) -> None:
    """Write a stream as a compact ``.npz`` (``t`` int64, ``x``/``y`` uint16, ``p`` uint8)."""
    ev = validate_events(events, source=path)
    if len(ev['t']) and max(ev['x'].max(), ev['y'].max()) > np.iinfo(np.uint16).max:
        raise EventFileError(f'{path}: coordinates do not fit the uint16 of the compact format')
    arrays = dict(t=ev['t'], x=ev['x'].astype(np.uint16), y=ev['y'].astype(np.uint16),
                  p=ev['p'].astype(np.uint8))
    (np.savez_compressed if compress else np.savez)(path, **arrays)


def event_time_range(events: Events) -> Tuple[int, int]:
    """``(t_first, t_last)`` of a time-ordered stream; ``(0, 0)`` for an empty one."""
    t = events['t']
    return (int(t[0]), int(t[-1])) if len(t) else (0, 0)
