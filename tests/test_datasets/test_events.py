"""Event readers: the real N-MNIST (.bin, .npz) and DVXplorer (.npz) recordings; malformed
files."""
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mmspike.datasets.events import (ATIS_OVERFLOW_US, EventFileError, decode_atis_bin,
                                     load_atis_bin, load_events, load_npz_events,
                                     save_npz_events, validate_events)

SHARED_EVENTS = Path(__file__).resolve().parents[2] / '..' / 'shared' / 'data' / 'events'


@pytest.fixture(scope='module')
def events_dir() -> Path:
    if not SHARED_EVENTS.is_dir():
        pytest.skip(f'real event recordings not found at {SHARED_EVENTS.resolve()} '
                    '(check out ../shared beside the repository)')
    return SHARED_EVENTS


def _write_npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def _good(n: int = 5) -> dict:
    return dict(t=np.arange(n, dtype=np.int64) * 10, x=np.arange(n, dtype=np.uint16),
                y=np.zeros(n, np.uint16), p=(np.arange(n) % 2).astype(np.uint8))


# ---------------------------------------------------------------------------- real recordings
def test_nmnist_bin_counts(events_dir):
    ev = load_atis_bin(events_dir / 'nmnist_sample.bin', sensor_size=(34, 34))
    assert len(ev['t']) == 4325
    assert int(ev['p'].sum()) == 2145 and int((ev['p'] == 0).sum()) == 2180
    assert ev['x'].max() == 33 and ev['y'].max() == 33 and ev['x'].min() == 0
    assert np.all(np.diff(ev['t']) >= 0)
    assert 0.30e6 < ev['t'][-1] - ev['t'][0] < 0.32e6  # "4,325 events over 0.31 s"
    assert ev['t'].dtype == np.int64 and ev['p'].dtype == np.uint8


def test_nmnist_bin_matches_its_npz(events_dir):
    a = load_events(events_dir / 'nmnist_sample.bin', sensor_size=(34, 34))
    b = load_events(events_dir / 'nmnist_sample_txyp.npz', sensor_size=(34, 34))
    for k in 'txyp':
        np.testing.assert_array_equal(a[k], b[k])


def test_dvxplorer_npz(events_dir):
    ev = load_npz_events(events_dir / 'dvxplorer_sample_txyp.npz', sensor_size=(320, 240))
    assert len(ev['t']) == 111954
    assert ev['x'].max() == 319 and ev['y'].max() == 239
    assert ev['t'][0] > 1.6e15  # absolute microseconds, kept as int64 without overflow
    assert 0.58e6 < ev['t'][-1] - ev['t'][0] < 0.60e6
    # It also fits the HAR-DVS DAVIS346 frame, but not a sensor one pixel too narrow.
    load_npz_events(events_dir / 'dvxplorer_sample_txyp.npz', sensor_size=(346, 260))
    with pytest.raises(EventFileError, match=r'x coordinate 319 outside the sensor.*< 319'):
        load_npz_events(events_dir / 'dvxplorer_sample_txyp.npz', sensor_size=(319, 240))
    with pytest.raises(EventFileError, match='y coordinate 239 outside'):
        load_npz_events(events_dir / 'dvxplorer_sample_txyp.npz', sensor_size=(320, 200))


def test_truncated_real_files(events_dir, tmp_path):
    data = (events_dir / 'dvxplorer_sample_txyp.npz').read_bytes()
    cut = tmp_path / 'cut.npz'
    cut.write_bytes(data[:len(data) // 2])
    with pytest.raises(EventFileError, match=r'cut\.npz.*truncated or corrupt'):
        load_npz_events(cut)
    raw = (events_dir / 'nmnist_sample.bin').read_bytes()
    cut_bin = tmp_path / 'cut.bin'
    cut_bin.write_bytes(raw[:-2])
    with pytest.raises(EventFileError, match=r'21623 bytes is not a multiple of 5.*truncated'):
        load_atis_bin(cut_bin)


# ---------------------------------------------------------------------------- ATIS decoding
def test_atis_decoding_by_hand():
    # x=5, y=7, ON, t=0x012345; then x=33, y=0, OFF, t=0x7FFFFF (largest 23-bit time)
    data = bytes([5, 7, 0x80 | 0x01, 0x23, 0x45, 33, 0, 0x7F, 0xFF, 0xFF])
    ev = decode_atis_bin(data)
    assert ev['x'].tolist() == [5, 33] and ev['y'].tolist() == [7, 0]
    assert ev['p'].tolist() == [1, 0] and ev['t'].tolist() == [0x012345, 0x7FFFFF]


def test_atis_overflow_marker():
    data = bytes([1, 1, 0x00, 0x00, 0x10,    # t=16
                  0, 240, 0x00, 0x00, 0x00,  # overflow marker: later times + 2**13
                  2, 3, 0x80, 0x00, 0x05])   # t=5 + 8192
    ev = decode_atis_bin(data)
    assert ev['t'].tolist() == [16, 5 + ATIS_OVERFLOW_US]
    assert ev['y'].tolist() == [1, 3] and ev['p'].tolist() == [0, 1]


# ---------------------------------------------------------------------------- malformed files
def test_wrong_keys(tmp_path):
    f = _write_npz(tmp_path / 'keys.npz', ts=np.arange(3), xs=np.arange(3), y=np.arange(3),
                   p=np.zeros(3, np.uint8))
    with pytest.raises(EventFileError, match=r"keys.npz: event stream lacks key\(s\) \['t', 'x'\]"
                       r".*found \['p', 'ts', 'xs', 'y'\]"):
        load_npz_events(f)


def test_mismatched_lengths(tmp_path):
    ev = _good()
    ev['y'] = ev['y'][:3]
    with pytest.raises(EventFileError,
                       match=r"mismatched lengths \{'t': 5, 'x': 5, 'y': 3, 'p': 5\}"):
        load_npz_events(_write_npz(tmp_path / 'len.npz', **ev))


def test_negative_timestamp(tmp_path):
    ev = _good()
    ev['t'] = ev['t'] - 25  # [-25, -15, -5, 5, 15]
    with pytest.raises(EventFileError, match=r'neg.npz: negative timestamp -25 at event 0'):
        load_npz_events(_write_npz(tmp_path / 'neg.npz', **ev))


def test_time_order(tmp_path):
    ev = _good()
    ev['t'] = np.array([0, 10, 5, 20, 30])
    f = _write_npz(tmp_path / 'order.npz', **ev)
    with pytest.raises(EventFileError, match=r'not in time order \(1 step\(s\) go back, first at '
                       r'event 2: 10 -> 5\)'):
        load_npz_events(f)
    fixed = load_npz_events(f, sort=True)
    assert fixed['t'].tolist() == [0, 5, 10, 20, 30]
    assert fixed['x'].tolist() == [0, 2, 1, 3, 4]  # the other arrays follow the sort


def test_bad_values(tmp_path):
    ev = _good()
    ev['p'] = np.array([0, 1, 2, 1, 0], np.uint8)
    with pytest.raises(EventFileError, match=r'polarity must be 0/1 \(or -1/1\), found values '
                       r'\[0, 1, 2\]'):
        validate_events(ev)
    ev = _good()
    ev['p'] = np.array([-1, 1, -1, 1, 1], np.int8)  # +-1 convention is mapped to 0/1
    assert validate_events(ev)['p'].tolist() == [0, 1, 0, 1, 1]
    ev = _good()
    ev['x'] = np.array([0, 1, -2, 3, 4])
    with pytest.raises(EventFileError, match='negative x coordinate -2'):
        validate_events(ev)
    ev = _good()
    ev['t'] = ev['t'].astype(np.float64)
    with pytest.raises(EventFileError, match="'t' must hold integers, got float64"):
        validate_events(ev, source='f.npz')
    ev = _good()
    ev['x'] = ev['x'].reshape(5, 1)
    with pytest.raises(EventFileError, match=r"'x' must be 1-D, got shape \(5, 1\)"):
        validate_events(ev)


def test_not_an_npz(tmp_path):
    npy = tmp_path / 'single.npz'
    with open(npy, 'wb') as f:
        np.save(f, np.arange(4))
    with pytest.raises(EventFileError, match=r'single ndarray \(.npy data\), not an .npz'):
        load_npz_events(npy)
    obj = tmp_path / 'obj.npz'
    np.savez(obj, t=np.array([object()]), x=np.zeros(1), y=np.zeros(1), p=np.zeros(1))
    with pytest.raises(EventFileError, match='obj.npz: not a readable .npz'):
        load_npz_events(obj)  # object arrays need pickle, which is never allowed
    garbage = tmp_path / 'garbage.npz'
    garbage.write_bytes(b'PK\x03\x04 definitely not a zip')
    with pytest.raises(EventFileError, match='garbage.npz'):
        load_npz_events(garbage)
    with pytest.raises(FileNotFoundError, match='event file not found'):
        load_npz_events(tmp_path / 'missing.npz')
    with pytest.raises(EventFileError, match=r"unsupported event file suffix '.raw'"):
        load_events(tmp_path / 'rec.raw')  # (.aedat4 is read: see test_aedat4_*)


def test_corrupt_member(tmp_path):
    """A compressed archive whose data bytes are damaged fails when decoded, with the path."""
    f = tmp_path / 'bad.npz'
    np.savez_compressed(f, **_good(2000))
    data = bytearray(f.read_bytes())
    with zipfile.ZipFile(f) as z:
        info = z.getinfo('x.npy')
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    for i in range(start + 10, start + 60):
        data[i] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(EventFileError, match='bad.npz'):
        load_npz_events(f)


def test_empty_stream_and_roundtrip(tmp_path):
    empty = validate_events(dict(t=np.zeros(0, np.int64), x=np.zeros(0, np.uint16),
                                 y=np.zeros(0, np.uint16), p=np.zeros(0, np.uint8)), (4, 4))
    assert all(len(v) == 0 for v in empty.values())
    ev = _good()
    save_npz_events(tmp_path / 'rt.npz', ev)
    with np.load(tmp_path / 'rt.npz') as z:
        assert z['x'].dtype == np.uint16 and z['t'].dtype == np.int64
    back = load_npz_events(tmp_path / 'rt.npz', sensor_size=(5, 1))
    for k in 'txyp':
        np.testing.assert_array_equal(back[k], ev[k])


# ---------------------------------------------------------------------------- issue 17 item 6
def test_bin_cut_on_an_event_boundary_is_caught_when_the_recording_is_known(events_dir,
                                                                           tmp_path):
    """A .bin cut at a multiple of 5 bytes decodes as a valid shorter recording; what the caller
    knows about the recording (event count, least duration) catches it."""
    raw = (events_dir / 'nmnist_sample.bin').read_bytes()
    full = load_atis_bin(events_dir / 'nmnist_sample.bin', num_events=4325,
                         min_duration_us=300_000)
    assert len(full['t']) == 4325
    cut = tmp_path / 'cut.bin'
    cut.write_bytes(raw[:5 * 2000])
    with pytest.raises(EventFileError, match=r'cut\.bin: its 2000 events span \d+ us, less than '
                       r'min_duration_us=300000: the recording is truncated'):
        load_atis_bin(cut, min_duration_us=300_000)
    with pytest.raises(EventFileError, match=r'cut\.bin: holds 2000 events, expected 4325'):
        load_atis_bin(cut, num_events=4325)


@pytest.mark.parametrize('suffix', ['.bin', '.npz'])
def test_zero_event_file_is_refused_or_warned(tmp_path, suffix):
    f = tmp_path / f'none{suffix}'
    if suffix == '.bin':
        f.write_bytes(b'')
    else:
        _write_npz(f, **{k: v[:0] for k, v in _good().items()})
    with pytest.raises(EventFileError, match=r'none\.\w+: the recording holds no events.*'
                       r'all-zero clip.*allow_empty=True'):
        load_events(f, sensor_size=(4, 4))
    with pytest.warns(UserWarning, match='holds no events'):
        ev = load_events(f, sensor_size=(4, 4), allow_empty=True)
    assert all(len(v) == 0 for v in ev.values())


# ---------------------------------------------------------------------------- AEDAT 4.0
def test_aedat4_dvxplorer_recording(events_dir):
    """The real DVXplorer recording (tonic's test file) decodes to the same 111,954 events as its
    .npz derived in shared/data (SOURCES.md), in the sensor size the file declares (320x240)."""
    ev = load_events(events_dir / 'dvxplorer_sample.aedat4')
    ref = load_npz_events(events_dir / 'dvxplorer_sample_txyp.npz')
    assert len(ev['t']) == 111954
    for k in 'txyp':
        np.testing.assert_array_equal(ev[k], ref[k])
        assert ev[k].dtype == ref[k].dtype
    assert ev['x'].max() == 319 and ev['y'].max() == 239
    with pytest.raises(EventFileError, match=r'x coordinate 319 outside the sensor'):
        load_events(events_dir / 'dvxplorer_sample.aedat4', sensor_size=(300, 240))


def test_aedat4_truncated_or_not_aedat(events_dir, tmp_path):
    data = (events_dir / 'dvxplorer_sample.aedat4').read_bytes()
    cut = tmp_path / 'cut.aedat4'
    cut.write_bytes(data[:len(data) // 2])
    with pytest.raises(EventFileError, match=r'cut\.aedat4: the AEDAT 4\.0 file is truncated or '
                       r'corrupt \(decoding stopped after \d+ events\)'):
        load_events(cut)
    fake = tmp_path / 'fake.aedat4'
    fake.write_bytes((events_dir / 'nmnist_sample.bin').read_bytes())
    with pytest.raises(EventFileError, match=r'fake\.aedat4: not a readable AEDAT 4\.0 file'):
        load_events(fake)
