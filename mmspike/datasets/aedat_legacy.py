"""Legacy AEDAT recordings (jAER AEDAT 2.0 and cAER AEDAT 3.1) as event streams.

No maintained, permissively licensed decoder of these formats installs cleanly on the pinned
stack (checked for this module): ``aedat`` (MIT, pinned) and ``faery`` (LGPL) read AEDAT 4 only;
``dv`` (dv-python 1.0.12) is AGPL-3.0, declared end-of-life by iniVation, decodes one Python
object per event and reads AEDAT 2.0 addresses with the DAVIS bit layout only (wrong for DVS128
files such as CIFAR10-DVS); ``evlib`` (MIT) pulls in polars, pyarrow and pandera. So this module
parses the documented layouts itself, vectorised with NumPy, and ``tests/test_datasets`` checks it
against ``evlib`` 0.13.2 run outside the project on the bundled samples.

AEDAT 2.0 (jAER; CIFAR10-DVS's original release)
    ASCII header lines starting with ``#`` (the first is ``#!AER-DAT2.0``), then 8-byte records of
    a big-endian ``uint32`` address and a big-endian ``uint32`` timestamp in microseconds. The
    address layout depends on the camera:

    - ``'dvs128'``: bit 0 polarity (1 = ON), bits 1-7 x, bits 8-14 y, bit 15 set for external
      (non-pixel) events, which are not polarity events and are left out;
    - ``'davis'``: bit 11 polarity, bits 12-21 x, bits 22-30 y; records with bit 31 (APS/ADC
      samples) or bit 10 (IMU and other special events) set are not polarity events.

    Coordinates are returned as recorded (jAER draws y from the bottom); no flip is applied.

AEDAT 3.1 (cAER; DVS128 Gesture)
    ASCII header lines starting with ``#``: ``#!AER-DAT3.1``, ``#Format: RAW``, ``#Source ...``,
    ..., ending with the line ``#!END-HEADER``. Then packets, each a 28-byte little-endian header
    (``int16`` eventType, ``int16`` eventSource, ``int32`` eventSize, eventTSOffset,
    eventTSOverflow, eventCapacity, eventNumber, eventValid) followed by ``eventCapacity *
    eventSize`` bytes of events. Polarity events (type 1) are 8 bytes: a ``uint32`` data word
    (bit 0 valid, bit 1 polarity, bits 2-16 y, bits 17-31 x) and an ``int32`` timestamp; the full
    timestamp is ``eventTSOverflow << 31 | timestamp`` (microseconds). Only valid polarity events
    are kept; packets of other types (special events, frames, IMU) are skipped, and
    :func:`decode_aedat31` reports how many events of each type it skipped.

Every error is an :class:`~mmspike.datasets.events.EventFileError` naming the file and the problem
(truncated packet or record, missing end of header, impossible packet header, unknown version).
"""
import os
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from .events import (EventFileError, Events, PathLike, _where, check_not_empty,
                     validate_events)

AEDAT2_RECORD_BYTES = 8
AEDAT31_PACKET_HEADER_BYTES = 28
AEDAT31_POLARITY_TYPE = 1
AEDAT31_TS_OVERFLOW_SHIFT = 31
AEDAT31_END_OF_HEADER = b'#!END-HEADER'
AEDAT2_ADDRESS_LAYOUTS = ('dvs128', 'davis')
_PACKET_HEADER = np.dtype([('type', '<i2'), ('source', '<i2'), ('size', '<i4'),
                           ('ts_offset', '<i4'), ('ts_overflow', '<i4'), ('capacity', '<i4'),
                           ('number', '<i4'), ('valid', '<i4')])


class AedatHeader(NamedTuple):
    """The ASCII header of a legacy AEDAT file.

    Attributes:
        version (str): ``'2.0'`` or ``'3.1'`` (from the ``#!AER-DAT<version>`` line).
        lines (list[str]): Every header line without its line ending.
        data_offset (int): Byte offset of the first binary byte.
    """
    version: str
    lines: List[str]
    data_offset: int


def _next_line(data: bytes, pos: int) -> int:
    """End (exclusive, past ``\\n``) of the line starting at ``pos``; -1 if none ends."""
    end = data.find(b'\n', pos)
    return -1 if end < 0 else end + 1


def parse_aedat_header(data: bytes, source: Optional[PathLike] = None) -> AedatHeader:
    """Split the ASCII header off a legacy AEDAT file.

    Args:
        data (bytes): The whole file (or at least its header).
        source (PathLike, optional): File name for error messages. Defaults to None.

    Returns:
        AedatHeader: version, header lines and the offset of the binary data.
    """
    where = _where(source)
    if not data.startswith(b'#!AER-DAT'):
        raise EventFileError(f'{where}not a legacy AEDAT file: it must start with "#!AER-DAT", '
                             f'starts with {data[:16]!r}')
    end = _next_line(data, 0)
    if end < 0:
        raise EventFileError(f'{where}truncated AEDAT header: the version line does not end')
    version = data[len(b'#!AER-DAT'):end].strip().decode('ascii', 'replace')
    if version not in ('2.0', '3.1'):
        raise EventFileError(f'{where}AEDAT version {version!r} is not supported here; this '
                             "reader handles '2.0' (jAER) and '3.1' (cAER); AEDAT 4 files "
                             '(.aedat4) are read by mmspike.datasets.aedat4')
    lines, pos = [], 0
    while True:
        if version == '2.0' and data[pos:pos + 1] != b'#':
            break  # AEDAT 2.0: the header is every leading line that starts with '#'
        end = _next_line(data, pos)
        if end < 0:
            if version == '3.1':
                raise EventFileError(f'{where}truncated AEDAT 3.1 header: no '
                                     f'"{AEDAT31_END_OF_HEADER.decode()}" line')
            raise EventFileError(f'{where}truncated AEDAT 2.0 header: a "#" line does not end')
        line = data[pos:end].rstrip(b'\r\n')
        if version == '3.1' and not line.startswith(b'#'):
            raise EventFileError(f'{where}AEDAT 3.1 header line at byte {pos} does not start '
                                 f'with "#" and no "{AEDAT31_END_OF_HEADER.decode()}" came '
                                 'before it')
        lines.append(line.decode('utf-8', 'replace'))
        pos = end
        if version == '3.1' and line == AEDAT31_END_OF_HEADER:
            break
    return AedatHeader(version, lines, pos)


def _unwrap_uint32_us(ts: np.ndarray) -> np.ndarray:
    """jAER writes 32-bit microsecond timestamps that wrap after ~71.6 min; a step back by more
    than half the range is a wrap (smaller steps back are left for validation to report)."""
    t = ts.astype(np.int64)
    if len(t) > 1:
        wraps = np.concatenate([[0], np.cumsum(np.diff(t) < -(1 << 31))])
        t = t + (wraps << 32)
    return t


def decode_aedat2(data: bytes, data_offset: int, layout: str = 'dvs128',
                  source: Optional[PathLike] = None) -> Tuple[Events, Dict[str, int]]:
    """Decode the records of an AEDAT 2.0 file (see the module docstring).

    Args:
        data (bytes): The whole file.
        data_offset (int): Where the records start (:func:`parse_aedat_header`).
        layout (str): Address layout, ``'dvs128'`` or ``'davis'``. Defaults to ``'dvs128'``.
        source (PathLike, optional): File name for error messages. Defaults to None.

    Returns:
        tuple: the events (``t`` int64 us, ``x``, ``y`` int64, ``p`` 0/1) and counts
        ``dict(records=..., polarity=..., other=...)``.
    """
    if layout not in AEDAT2_ADDRESS_LAYOUTS:
        raise ValueError(f'layout must be one of {AEDAT2_ADDRESS_LAYOUTS}, got {layout!r}')
    body = len(data) - data_offset
    if body % AEDAT2_RECORD_BYTES:
        raise EventFileError(
            f'{_where(source)}AEDAT 2.0 data is {body} bytes, not a multiple of '
            f'{AEDAT2_RECORD_BYTES} (address + timestamp per record): the file is truncated '
            f'(last record cut {body % AEDAT2_RECORD_BYTES} bytes in)')
    raw = np.frombuffer(data, dtype='>u4', offset=data_offset).reshape(-1, 2)
    addr, ts = raw[:, 0].astype(np.int64), raw[:, 1]
    if layout == 'dvs128':
        keep = (addr >> 15) & 1 == 0
        x, y, p = (addr >> 1) & 0x7F, (addr >> 8) & 0x7F, addr & 1
    else:
        keep = ((addr >> 31) & 1 == 0) & ((addr >> 10) & 1 == 0)
        x, y, p = (addr >> 12) & 0x3FF, (addr >> 22) & 0x1FF, (addr >> 11) & 1
    t = _unwrap_uint32_us(ts)
    counts = dict(records=len(addr), polarity=int(keep.sum()), other=int((~keep).sum()))
    return dict(t=t[keep], x=x[keep], y=y[keep], p=p[keep]), counts


def decode_aedat31(data: bytes, data_offset: int,
                   source: Optional[PathLike] = None) -> Tuple[Events, Dict[str, int]]:
    """Decode the packets of an AEDAT 3.1 file (see the module docstring).

    Args:
        data (bytes): The whole file.
        data_offset (int): Where the first packet starts (:func:`parse_aedat_header`).
        source (PathLike, optional): File name for error messages. Defaults to None.

    Returns:
        tuple: the valid polarity events (``t`` int64 us, ``x``, ``y`` int64, ``p`` 0/1) and
        counts ``dict(packets=..., polarity=..., invalid=..., other=...)`` (``other``: events
        of other types, skipped).
    """
    where = _where(source)
    # Views of each polarity packet's events and its overflow; the bit work runs once at the end.
    chunks: List[np.ndarray] = []
    overflows: List[Tuple[int, int]] = []
    counts = dict(packets=0, polarity=0, invalid=0, other=0)
    pos, n = data_offset, len(data)
    while pos < n:
        index = counts['packets']
        if n - pos < AEDAT31_PACKET_HEADER_BYTES:
            raise EventFileError(f'{where}AEDAT 3.1 file truncated: packet {index} at byte {pos} '
                                 f'has {n - pos} of its {AEDAT31_PACKET_HEADER_BYTES} header '
                                 'bytes')
        head = np.frombuffer(data, dtype=_PACKET_HEADER, count=1, offset=pos)[0]
        etype, size, cap = int(head['type']), int(head['size']), int(head['capacity'])
        number, valid = int(head['number']), int(head['valid'])
        overflow = int(head['ts_overflow'])
        if size <= 0 or not (0 <= valid <= number <= cap) or overflow < 0:
            raise EventFileError(
                f'{where}corrupt AEDAT 3.1 packet header {index} at byte {pos}: eventSize={size}, '
                f'eventCapacity={cap}, eventNumber={number}, eventValid={valid}, '
                f'eventTSOverflow={overflow} (need size > 0, 0 <= valid <= number <= capacity)')
        start = pos + AEDAT31_PACKET_HEADER_BYTES
        end = start + cap * size
        if end > n:
            raise EventFileError(f'{where}AEDAT 3.1 file truncated: packet {index} at byte {pos} '
                                 f'declares {cap} events of {size} bytes ({cap * size} bytes) '
                                 f'but only {n - start} bytes follow')
        if etype == AEDAT31_POLARITY_TYPE:
            if size != 8 or int(head['ts_offset']) != 4:
                raise EventFileError(f'{where}AEDAT 3.1 polarity packet {index} at byte {pos} '
                                     f'has eventSize={size}, eventTSOffset='
                                     f"{int(head['ts_offset'])}; polarity events are 8 bytes "
                                     'with the timestamp at offset 4')
            chunks.append(np.frombuffer(data, dtype='<u4', count=2 * number, offset=start))
            overflows.append((overflow, number))
        else:
            counts['other'] += number
        counts['packets'] += 1
        pos = end
    if not chunks:
        empty = np.zeros(0, np.int64)
        return dict(t=empty, x=empty, y=empty, p=empty), counts
    ev = np.concatenate(chunks).reshape(-1, 2)
    word, ok = ev[:, 0], (ev[:, 0] & 1).astype(bool)
    high = np.repeat(np.array([o for o, _ in overflows], np.int64),
                     [k for _, k in overflows])[ok] << AEDAT31_TS_OVERFLOW_SHIFT
    word = word[ok]
    t = high | (ev[ok, 1] & 0x7FFFFFFF).astype(np.int64)
    counts['polarity'], counts['invalid'] = int(ok.sum()), int(len(ok) - ok.sum())
    return dict(t=t, x=((word >> 17) & 0x7FFF).astype(np.int64),
                y=((word >> 2) & 0x7FFF).astype(np.int64),
                p=((word >> 1) & 1).astype(np.int64)), counts


def load_aedat_legacy(path: PathLike,
                      sensor_size: Optional[Sequence[int]] = (128, 128),
                      layout: str = 'dvs128',
                      sort: bool = False,
                      allow_empty: bool = False) -> Events:
    """Read the polarity events of a jAER AEDAT 2.0 or cAER AEDAT 3.1 ``.aedat`` file.

    The version comes from the file's first line.

    Args:
        path (PathLike): The ``.aedat`` file.
        sensor_size (Sequence[int], optional): ``(width, height)`` to check coordinates
            against. Defaults to ``(128, 128)`` (DVS128: CIFAR10-DVS and DVS128 Gesture); None
            skips the check.
        layout (str): AEDAT 2.0 address layout, ``'dvs128'`` or ``'davis'`` (see the module
            docstring); unused for AEDAT 3.1, whose layout is fixed. Defaults to ``'dvs128'``.
        sort (bool): See :func:`~mmspike.datasets.events.validate_events`. Defaults to False.
        allow_empty (bool): Accept a recording without events (with a warning). Defaults to
            False.

    Returns:
        dict: ``t`` (int64 microseconds as recorded), ``x``, ``y`` (int64), ``p`` (uint8,
        1 = ON).
    """
    events, _, _ = read_aedat_legacy(path, sensor_size, layout, sort, allow_empty)
    return events


def read_aedat_legacy(path: PathLike,
                      sensor_size: Optional[Sequence[int]] = (128, 128),
                      layout: str = 'dvs128',
                      sort: bool = False,
                      allow_empty: bool = False) -> Tuple[Events, AedatHeader, Dict[str, int]]:
    """:func:`load_aedat_legacy`, also returning the header and the decoder's counts."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'event file not found: {path}')
    data = path.read_bytes()
    header = parse_aedat_header(data, source=path)
    if header.version == '2.0':
        events, counts = decode_aedat2(data, header.data_offset, layout, source=path)
    else:
        events, counts = decode_aedat31(data, header.data_offset, source=path)
    events = validate_events(events, sensor_size, source=path, sort=sort)
    return check_not_empty(events, path, allow_empty), header, counts


def aedat_version(path: PathLike) -> str:
    """``'2.0'``, ``'3.1'`` or ``'4.0'``, from the first line of an AEDAT file."""
    with open(os.fspath(path), 'rb') as f:
        first = f.readline(64).rstrip(b'\r\n')
    if not first.startswith(b'#!AER-DAT'):
        raise EventFileError(f'{path}: not an AEDAT file: it must start with "#!AER-DAT", '
                             f'starts with {first[:16]!r}')
    return first[len(b'#!AER-DAT'):].decode('ascii', 'replace')


def dvs128_to_spikingjelly(events: Events, size: int = 128) -> Events:
    """Re-orient raw DVS128 AEDAT 2.0 address fields as spikingjelly's CIFAR10-DVS loader does.

    spikingjelly (and the Spikformer code trained on its frames) reads CIFAR10-DVS's ``.aedat``
    files as ``x = size-1 - y_field``, ``y = size-1 - x_field``, ``p = 1 - p_field`` (its note:
    the same data as the CAVIAR ``dat2mat.m``, see events-tfds PR #1); its ``events_np`` ``.npz``
    files hold events in this orientation already.

    Args:
        events (dict): ``t``, ``x``, ``y``, ``p`` as :func:`load_aedat_legacy` returns them.
        size (int): Sensor side. Defaults to 128.
    """
    return dict(t=events['t'], x=size - 1 - events['y'], y=size - 1 - events['x'],
                p=(1 - events['p'].astype(np.int64)).astype(np.uint8))
