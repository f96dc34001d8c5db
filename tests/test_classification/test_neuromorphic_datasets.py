"""CIFAR10-DVS and DVS128 Gesture dataset classes on the bundled release-layout samples.

Clip event counts are checked against spikingjelly 2.0.0's own clip cut and CIFAR10-DVS reader,
run on the same files outside the repository (tests/data/dvs_gesture_sample/
spikingjelly_reference.json); the real DVS128 Gesture labels file is checked against its rows.
"""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import mmspike.classification  # noqa: F401  (registers the datasets and transforms)
from mmspike.classification.datasets import (CIFAR10DVSDataset, DVSGestureDataset,
                                             read_gesture_labels)
from mmspike.classification.transforms import EventsToFrames, LoadEventClip
from mmspike.datasets.events import EventFileError

DATA = Path(__file__).resolve().parents[1] / 'data'
GESTURE = DATA / 'dvs_gesture_sample' / 'DvsGesture'
CIFAR = DATA / 'cifar10_dvs_sample'
REF = json.loads((DATA / 'dvs_gesture_sample' / 'spikingjelly_reference.json').read_text())
SHARED_AEDAT4 = DATA.parents[1].parent / 'shared' / 'data' / 'events' / 'dvxplorer_sample.aedat4'


def infos(ds) -> list:
    return [ds.get_data_info(i) for i in range(len(ds))]


def load(info: dict, loader=None) -> dict:
    return (loader or LoadEventClip()).transform(dict(info))


@pytest.mark.parametrize('split,user', [('train', 'user01_fluorescent'), ('test', 'user24_led')])
def test_dvs_gesture_clips_match_spikingjelly(split, user):
    ds = DVSGestureDataset(data_root=str(GESTURE), split=split)
    assert len(ds) == 3 and ds.metainfo['classes'][0] == 'hand_clapping'
    loader = LoadEventClip()  # one loader: the recording is decoded once for its clips
    for i, info in enumerate(infos(ds)):
        assert info['gt_label'] == i and info['clip_index'] == i
        assert Path(info['event_path']).name == f'{user}.aedat'
        res = load(info, loader)
        ev, (start, end) = res['events'], res['event_window']
        assert start <= ev['t'][0] and ev['t'][-1] < end
        ref = REF['gesture_clips'][f'{i}/{user}_0.npz']
        assert (len(ev['t']), int(ev['t'][0]), int(ev['t'][-1]), int(ev['p'].sum())) == \
            (ref['n'], ref['t0'], ref['t1'], ref['p1'])
        frames = EventsToFrames(num_bins=16, split_by='count').transform(res)['img']
        assert frames.shape == (16, 2, 128, 128) and frames.sum() == ref['n']


def test_real_dvs_gesture_labels_file():
    """aestream's copy of the release's user01_natural_labels.csv: 12 gestures, class 8 twice."""
    rows = read_gesture_labels(str(DATA / 'dvs_gesture_sample' / 'user01_natural_labels.csv'))
    assert [r[0] for r in rows] == [1, 2, 3, 5, 4, 6, 7, 8, 8, 9, 10, 11]
    assert rows[0] == (1, 53036986, 59508469) and rows[-1] == (11, 171367247, 177991967)


@pytest.mark.parametrize('text,match', [
    ('class,start,end\n1,0,10\n', 'first line must be'),
    ('class,startTime_usec,endTime_usec\n12,0,10\n', r'line 2: class 12 outside 1..11'),
    ('class,startTime_usec,endTime_usec\n1,0,10\n2,30,20\n', r'line 3: need 0 <= start'),
    ('class,startTime_usec,endTime_usec\n1,0,x\n', 'line 2: expected three integers'),
])
def test_bad_labels_files_are_named(tmp_path, text, match):
    path = tmp_path / 'user01_led_labels.csv'
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        read_gesture_labels(str(path))


def test_dvs_gesture_missing_files_and_empty_clip(tmp_path):
    root = tmp_path / 'DvsGesture'
    root.mkdir()
    (root / 'trials_to_train.txt').write_text('user01_fluorescent.aedat\n')
    with pytest.raises(FileNotFoundError, match='recording .*user01_fluorescent.aedat not found'):
        DVSGestureDataset(data_root=str(root))
    shutil.copy(GESTURE / 'user01_fluorescent.aedat', root)
    with pytest.raises(FileNotFoundError, match='labels file not found'):
        DVSGestureDataset(data_root=str(root))
    (root / 'user01_fluorescent_labels.csv').write_text(
        'class,startTime_usec,endTime_usec\n4,900000,950000\n')  # after the last event
    ds = DVSGestureDataset(data_root=str(root))
    with pytest.raises(EventFileError, match=r'clip \[900000, 950000\) us holds no events'):
        load(ds.get_data_info(0))


def test_cifar10_dvs_split_orientation_and_reference():
    kw = dict(data_root=str(CIFAR), classes=('airplane', 'automobile'))
    train = CIFAR10DVSDataset(split='train', train_ratio=0.5, **kw)
    test = CIFAR10DVSDataset(split='test', train_ratio=0.5, **kw)
    names = lambda ds: [Path(d['event_path']).name for d in infos(ds)]  # noqa: E731
    assert names(train) == ['cifar10_airplane_0.aedat', 'cifar10_airplane_1.aedat',
                            'cifar10_automobile_0.aedat', 'cifar10_automobile_1.aedat']
    assert names(test) == ['cifar10_airplane_2.aedat', 'cifar10_automobile_2.aedat']
    assert [d['gt_label'] for d in infos(test)] == [0, 1]
    for info in infos(test):
        ev = load(info)['events']
        rel = str(Path(info['event_path']).relative_to(DATA))
        ref = REF['files'][rel]
        assert (len(ev['t']), int(ev['x'].sum()), int(ev['y'].sum()), int(ev['p'].sum())) == \
            (ref['n'], ref['xsum'], ref['ysum'], ref['p1'])
    raw = CIFAR10DVSDataset(split='test', train_ratio=0.5, orientation='raw', **kw)
    info = raw.get_data_info(0)
    assert info['event_remap'] is None
    ev = load(info)['events']
    ref = REF['files']['cifar10_dvs_sample/airplane/cifar10_airplane_2.aedat']
    assert int(ev['p'].sum()) == ref['n'] - ref['p1']  # the raw polarity is spikingjelly's 1 - p
    assert int(ev['x'].sum()) == 127 * ref['n'] - ref['ysum']


def test_cifar10_dvs_split_arithmetic_and_errors(tmp_path):
    ds = CIFAR10DVSDataset.__new__(CIFAR10DVSDataset)
    files = sorted(f'cifar10_cat_{i}.aedat' for i in range(1000))  # string order, as upstream
    ds.train_ratio, ds.split = 0.9, 'train'
    assert len(ds.split_files(files)) == 900
    ds.split = 'test'
    test = ds.split_files(files)
    # string order: '_91' sorts after '_909', so the test set is not simply files 900-999
    assert len(test) == 100 and test[:2] == ['cifar10_cat_909.aedat', 'cifar10_cat_91.aedat']
    with pytest.raises(ValueError, match='split .test. of .* is empty'):
        CIFAR10DVSDataset(data_root=str(CIFAR), split='test',
                          classes=('airplane', 'automobile'))  # ceil(3 * 0.9) = 3: all train
    with pytest.raises(FileNotFoundError, match='class folder .*bird not found'):
        CIFAR10DVSDataset(data_root=str(CIFAR))
    with pytest.raises(ValueError, match="orientation must be 'spikingjelly' or 'raw'"):
        CIFAR10DVSDataset(data_root=str(CIFAR), orientation='jaer')


@pytest.mark.skipif(not SHARED_AEDAT4.is_file(), reason='shared/data not checked out')
def test_cifar10_dvs_reads_the_aedat4_release(tmp_path):
    """The iniVation conversion's layout (<class>/cifar10_<class>_<i>.aedat4), read by the aedat
    decoder; the shared DVXplorer file holds 111,954 events (shared/data/SOURCES.md)."""
    (tmp_path / 'dog').mkdir()
    shutil.copy(SHARED_AEDAT4, tmp_path / 'dog' / 'cifar10_dog_0.aedat4')
    ds = CIFAR10DVSDataset(data_root=str(tmp_path), split='all', classes=('dog', ),
                           sensor_size=(320, 240))
    info = ds.get_data_info(0)
    assert info['event_remap'] is None and info['gt_label'] == 0
    ev = load(info)['events']
    assert len(ev['t']) == 111954 and np.all(np.diff(ev['t']) >= 0)


def test_load_event_clip_errors_and_cache():
    path = str(CIFAR / 'airplane' / 'cifar10_airplane_0.aedat')
    loader = LoadEventClip()
    with pytest.raises(KeyError, match='needs a sensor size'):
        loader.transform(dict(event_path=path))
    with pytest.raises(ValueError, match="unknown event_remap 'caviar'"):
        loader.transform(dict(event_path=path, sensor_size=(128, 128), event_remap='caviar'))
    with pytest.raises(ValueError, match='needs a square sensor'):
        loader.transform(dict(event_path=path, sensor_size=(128, 130), event_remap='spikingjelly'))
    first = loader.transform(dict(event_path=path, sensor_size=(128, 128)))['events']
    again = loader.transform(dict(event_path=path, sensor_size=(128, 128)))['events']
    assert again['t'] is first['t']  # the decoded recording is reused, not decoded again


@pytest.mark.parametrize('split', ['train', 'test'])
def test_exported_clips_are_the_same_samples(tmp_path, split):
    from mmspike.classification.datasets.dvs_gesture import export_gesture_clips
    assert export_gesture_clips(str(GESTURE), str(tmp_path), split) == 3
    cut = DVSGestureDataset(data_root=str(GESTURE), split=split)
    exported = DVSGestureDataset(data_root=str(GESTURE), split=split, clips_dir=str(tmp_path))
    for a, b in zip(infos(cut), infos(exported)):
        assert a['gt_label'] == b['gt_label'] and 'clip_window' not in b
        ea, eb = load(a)['events'], load(b)['events']
        for k in 'txyp':
            np.testing.assert_array_equal(ea[k], eb[k])
    with pytest.raises(FileNotFoundError, match='dvs_gesture_to_clips.py'):
        DVSGestureDataset(data_root=str(GESTURE), split=split, clips_dir=str(tmp_path / 'none'))
