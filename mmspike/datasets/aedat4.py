"""AEDAT 4.0 recordings (iniVation DV: DVXplorer, DAVIS346, the cameras of HAR-DVS) as event
streams.

The container (a text header, then LZ4/ZSTD-compressed FlatBuffers packets per stream) is decoded
by the maintained ``aedat`` package (MIT, Rust; pinned in ``requirements/runtime.txt``), not by a
parser of our own. mmspike keeps the polarity events of one event stream and validates them like
every other reader (:func:`~mmspike.datasets.events.validate_events`).
"""
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .events import EventFileError, Events, PathLike, check_not_empty, validate_events


def _decoder(path: Path):
    try:
        import aedat
    except ImportError as e:  # a pinned runtime requirement; say how to get it
        raise ImportError('reading .aedat4 files needs the aedat package (pinned in '
                          'requirements/runtime.txt): pip install aedat==2.3.0') from e
    try:
        decoder = aedat.Decoder(str(path))
        return decoder, decoder.id_to_stream()
    except (RuntimeError, OSError, ValueError) as e:
        raise EventFileError(f'{path}: not a readable AEDAT 4.0 file (bad header, or not '
                             f'AEDAT 4): {e}') from None


def load_aedat4_events(path: PathLike,
                       sensor_size: Optional[Sequence[int]] = None,
                       sort: bool = False, allow_empty: bool = False,
                       stream_id: Optional[int] = None) -> Events:
    """Read the polarity events of an ``.aedat4`` recording.

    Args:
        path (PathLike): The ``.aedat4`` file.
        sensor_size (Sequence[int], optional): ``(width, height)`` to check coordinates against.
            Defaults to None: the size the file declares for its event stream.
        sort (bool): See :func:`~mmspike.datasets.events.validate_events`. Defaults to False.
        allow_empty (bool): Accept a recording without events (with a warning). Defaults to
            False.
        stream_id (int, optional): The event stream to read. Defaults to None: the file's only
            event stream (several are an error asking for ``stream_id``).

    Returns:
        dict: ``t`` (int64, microseconds as recorded: DV writes absolute Unix time), ``x``,
        ``y`` (int64), ``p`` (uint8, 1 = ON).

    Raises:
        EventFileError: naming the file: not AEDAT 4, no (or no such) event stream, truncated or
            corrupt packets, or events that fail validation.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'event file not found: {path}')
    decoder, streams = _decoder(path)
    event_streams = {i: s for i, s in streams.items() if s.get('type') == 'events'}
    if stream_id is None:
        if len(event_streams) != 1:
            raise EventFileError(f'{path}: {len(event_streams)} event streams '
                                 f'({sorted(event_streams)}); choose one with stream_id. Streams: '
                                 f'{streams}')
        stream_id = next(iter(event_streams))
    elif stream_id not in event_streams:
        raise EventFileError(f'{path}: no event stream with id {stream_id}; streams: {streams}')
    stream = event_streams[stream_id]
    if sensor_size is None:
        sensor_size = (int(stream['width']), int(stream['height']))

    chunks, count = [], 0
    try:
        for packet in decoder:
            if packet['stream_id'] == stream_id and 'events' in packet:
                chunks.append(packet['events'])
                count += len(packet['events'])
    except (RuntimeError, OSError, ValueError) as e:
        raise EventFileError(f'{path}: the AEDAT 4.0 file is truncated or corrupt (decoding '
                             f'stopped after {count} events): {e}') from None
    if chunks:
        ev = np.concatenate(chunks)
        t = ev['t']
        if len(t) and t.max() > np.iinfo(np.int64).max:
            raise EventFileError(f'{path}: timestamp {int(t.max())} does not fit int64 '
                                 'microseconds')
        events = dict(t=t.astype(np.int64), x=ev['x'], y=ev['y'], p=ev['on'].astype(np.uint8))
    else:
        events = {k: np.zeros(0, np.int64) for k in ('t', 'x', 'y', 'p')}
    events = validate_events(events, sensor_size, source=path, sort=sort)
    return check_not_empty(events, path, allow_empty)
