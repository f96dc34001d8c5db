"""Legacy AEDAT (jAER 2.0 / cAER 3.1) reader on the bundled samples.

The reference values come from spikingjelly 2.0.0's own readers run on the same files outside the
repository (tests/data/dvs_gesture_sample/spikingjelly_reference.json); the event totals of the
source recording are the ones shared/data/SOURCES.md states for it.
"""
import json
from pathlib import Path

import numpy as np
import pytest

from mmspike.datasets.aedat_legacy import (aedat_version, dvs128_to_spikingjelly,
                                           read_aedat_legacy)
from mmspike.datasets.events import EventFileError, load_events

DATA = Path(__file__).resolve().parents[1] / 'data'
GESTURE = DATA / 'dvs_gesture_sample' / 'DvsGesture'
CIFAR = DATA / 'cifar10_dvs_sample'
REF = json.loads((DATA / 'dvs_gesture_sample' / 'spikingjelly_reference.json').read_text())
GESTURE_FILES = ['user01_fluorescent.aedat', 'user24_led.aedat']
CIFAR_FILES = [f'{c}/cifar10_{c}_{i}.aedat' for c in ('airplane', 'automobile') for i in range(3)]


def summary(ev: dict) -> dict:
    return dict(n=len(ev['t']), t0=int(ev['t'][0]), t1=int(ev['t'][-1]),
                x=[int(ev['x'].min()), int(ev['x'].max())],
                y=[int(ev['y'].min()), int(ev['y'].max())], p1=int(ev['p'].sum()),
                xsum=int(ev['x'].sum()), ysum=int(ev['y'].sum()), tsum=int(ev['t'].sum()))


@pytest.mark.parametrize('name', GESTURE_FILES)
def test_aedat31_matches_spikingjelly(name):
    events, header, counts = read_aedat_legacy(GESTURE / name)
    assert header.version == '3.1' and header.lines[-1] == '#!END-HEADER'
    assert summary(events) == REF['files'][f'dvs_gesture_sample/DvsGesture/{name}']
    assert counts['polarity'] == len(events['t']) and counts['invalid'] == counts['other'] == 0
    assert events['t'].dtype == np.int64 and events['p'].dtype == np.uint8


def test_aedat31_keeps_the_source_recording():
    """user24_led.aedat re-encodes the whole N-MNIST sample: 4,325 events, 2,145 ON, 0.31 s."""
    events = load_events(GESTURE / 'user24_led.aedat', (128, 128))
    assert len(events['t']) == 4325 and int(events['p'].sum()) == 2145
    assert 0.30e6 < events['t'][-1] - events['t'][0] < 0.32e6


@pytest.mark.parametrize('name', CIFAR_FILES)
def test_aedat2_dvs128_matches_spikingjelly(name):
    events, header, counts = read_aedat_legacy(CIFAR / name)
    assert header.version == '2.0' and aedat_version(CIFAR / name) == '2.0'
    assert counts['records'] == counts['polarity'] == len(events['t'])
    # spikingjelly's CIFAR10-DVS orientation: x = 127 - y_field, y = 127 - x_field, p = 1 - p
    assert summary(dvs128_to_spikingjelly(events)) == REF['files'][f'cifar10_dvs_sample/{name}']


def _write(tmp_path, data: bytes, name='rec.aedat') -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_truncated_and_corrupt_aedat31_are_named(tmp_path):
    data = (GESTURE / 'user24_led.aedat').read_bytes()
    _, header, _ = read_aedat_legacy(GESTURE / 'user24_led.aedat')
    with pytest.raises(EventFileError, match=r'truncated: packet 1 .* only'):
        read_aedat_legacy(_write(tmp_path, data[:-5]))  # 4,325 events: packets of 4096 + 229
    with pytest.raises(EventFileError, match=r'packet 1 at byte \d+ has 10 of its 28 header'):
        read_aedat_legacy(_write(tmp_path, data[:header.data_offset + 28 + 4096 * 8 + 10]))
    with pytest.raises(EventFileError, match='no "#!END-HEADER" line'):
        read_aedat_legacy(_write(tmp_path, data[:header.data_offset - 20]))
    bad = bytearray(data)
    bad[header.data_offset + 16:header.data_offset + 20] = np.int32(-3).tobytes()  # capacity
    with pytest.raises(EventFileError, match='corrupt AEDAT 3.1 packet header 0'):
        read_aedat_legacy(_write(tmp_path, bytes(bad)))


def test_aedat31_skips_other_packets_and_invalid_events(tmp_path):
    data = (GESTURE / 'user24_led.aedat').read_bytes()
    ref, header, _ = read_aedat_legacy(GESTURE / 'user24_led.aedat')
    off = header.data_offset
    # a special-event packet (type 0, one 8-byte event) before the polarity packets
    special = (np.array([0, 1], '<i2').tobytes() + np.array([8, 4, 0, 1, 1, 1], '<i4').tobytes()
               + np.array([0x0, 5], '<u4').tobytes())
    body = bytearray(data[off:])
    body[28:32] = (np.frombuffer(body[28:32], '<u4') & ~np.uint32(1)).tobytes()  # 1st invalid
    events, _, counts = read_aedat_legacy(_write(tmp_path, data[:off] + special + bytes(body)))
    assert counts == dict(packets=3, polarity=4324, invalid=1, other=1)
    for k in 'txyp':
        np.testing.assert_array_equal(events[k], ref[k][1:])


def test_aedat31_timestamp_overflow(tmp_path):
    """eventTSOverflow supplies bit 31 upwards of every timestamp of its packet."""
    data = bytearray((GESTURE / 'user24_led.aedat').read_bytes())
    ref, header, counts = read_aedat_legacy(GESTURE / 'user24_led.aedat')
    pos = header.data_offset
    for _ in range(counts['packets']):
        cap = int(np.frombuffer(data[pos + 16:pos + 20], '<i4')[0])
        data[pos + 12:pos + 16] = np.int32(3).tobytes()
        pos += 28 + 8 * cap
    events, _, _ = read_aedat_legacy(_write(tmp_path, bytes(data)))
    np.testing.assert_array_equal(events['t'], ref['t'] + (3 << 31))


def test_truncated_aedat2_and_bad_versions_are_named(tmp_path):
    data = (CIFAR / 'airplane' / 'cifar10_airplane_0.aedat').read_bytes()
    with pytest.raises(EventFileError, match='not a multiple of 8.*truncated'):
        read_aedat_legacy(_write(tmp_path, data[:-3]))
    with pytest.raises(EventFileError, match="version '1.0' is not supported"):
        read_aedat_legacy(_write(tmp_path, b'#!AER-DAT1.0\r\n' + data[14:]))
    with pytest.raises(EventFileError, match='not a legacy AEDAT file'):
        read_aedat_legacy(_write(tmp_path, data[14:]))


def test_sensor_size_is_checked_through_load_events():
    """The DVXplorer crop spans the whole 128x128 frame: a smaller sensor is refused."""
    with pytest.raises(EventFileError, match='outside the sensor'):
        load_events(GESTURE / 'user01_fluorescent.aedat', (64, 64))


def test_aedat2_davis_layout_keeps_only_dvs_events(tmp_path):
    """jAER's DAVIS address layout: polarity bit 11, x bits 12-21, y bits 22-30; bit 31 marks
    APS (frame) samples and bit 10 IMU/special events, which are not polarity events."""
    def addr(x, y, p, aps=0, imu=0):
        return (aps << 31) | (y << 22) | (x << 12) | (p << 11) | (imu << 10)
    records = [(addr(345, 259, 1), 10), (addr(3, 4, 0, aps=1), 11), (addr(0, 7, 0), 12),
               (addr(1, 1, 1, imu=1), 13), (addr(200, 100, 1), 14)]
    body = np.array(records, '>u4').tobytes()
    path = _write(tmp_path, b'#!AER-DAT2.0\r\n# AEChip: Davis346\r\n' + body)
    events, _, counts = read_aedat_legacy(path, sensor_size=(346, 260), layout='davis')
    assert counts == dict(records=5, polarity=3, other=2)
    assert events['x'].tolist() == [345, 0, 200] and events['y'].tolist() == [259, 7, 100]
    assert events['p'].tolist() == [1, 0, 1] and events['t'].tolist() == [10, 12, 14]


def test_aedat2_unwraps_32bit_timestamps(tmp_path):
    """jAER's timestamps are 32-bit microseconds: a wrap (a step back by more than 2**31) is
    continued, a small step back is still reported as out of order."""
    data = bytearray((CIFAR / 'airplane' / 'cifar10_airplane_0.aedat').read_bytes())
    ref, header, _ = read_aedat_legacy(CIFAR / 'airplane' / 'cifar10_airplane_0.aedat')
    raw = np.frombuffer(bytes(data), '>u4', offset=header.data_offset).reshape(-1, 2).copy()
    shift = (1 << 32) - 50_000  # the clock wraps 50 ms into the recording
    raw[:, 1] = (raw[:, 1].astype(np.int64) + shift) % (1 << 32)
    events, _, _ = read_aedat_legacy(
        _write(tmp_path, bytes(data[:header.data_offset]) + raw.astype('>u4').tobytes()))
    np.testing.assert_array_equal(events['t'], ref['t'] + shift)
    raw[6, 1] = raw[5, 1] - 1  # one microsecond back: not a wrap
    with pytest.raises(EventFileError, match='not in time order'):
        read_aedat_legacy(_write(tmp_path, bytes(data[:header.data_offset]) +
                                 raw.astype('>u4').tobytes()))
