"""Event transforms: binning conservation on real recordings, clip sampling, upstream parity."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import mmspike.classification  # noqa: F401
from mmspike.datasets.events import load_events
from mmspike.classification.transforms import (CenterCropClip, EventsToFrames, FramesToPolarity,
                                         LoadEvents, LoadFrameClip, PackEventInputs,
                                         RandomFlipClip, ResizeClip, SampleEventWindow,
                                         SampleFrameClip, events_to_frames, list_frames)
from mmspike.registry import MODELS, TRANSFORMS

REPO = Path(__file__).resolve().parents[2]
SHARED_EVENTS = REPO / '..' / 'shared' / 'data' / 'events'
SAMPLE = REPO / 'tests' / 'data' / 'hardvs_sample'


@pytest.fixture(scope='module')
def nmnist() -> dict:
    if not SHARED_EVENTS.is_dir():
        pytest.skip(f'real event recordings not found at {SHARED_EVENTS.resolve()} '
                    '(check out ../shared beside the repository)')
    return load_events(SHARED_EVENTS / 'nmnist_sample.bin', sensor_size=(34, 34))


# ---------------------------------------------------------------------------- binning
@pytest.mark.parametrize('split_by', ['time', 'count'])
@pytest.mark.parametrize('num_bins', [1, 8, 13])
def test_binning_conserves_events(nmnist, split_by, num_bins):
    frames = events_to_frames(nmnist, (34, 34), num_bins, split_by)
    assert frames.shape == (num_bins, 2, 34, 34) and frames.dtype == np.float32
    assert frames.sum() == 4325
    assert frames[:, 0].sum() == 2180 and frames[:, 1].sum() == 2145  # ch 0 OFF, ch 1 ON
    # the per-pixel totals are the 2-D histogram of all events, whatever the binning
    total = np.zeros((2, 34, 34))
    np.add.at(total, (nmnist['p'], nmnist['y'], nmnist['x']), 1)
    np.testing.assert_array_equal(frames.sum(0), total)


def test_time_bins_by_hand(nmnist):
    t = nmnist['t']
    t0, t1 = int(t[0]), int(t[-1]) + 1
    frames = events_to_frames(nmnist, (34, 34), 8, 'time')
    edges = [t0 + (t1 - t0) * i / 8 for i in range(9)]
    expected = [int(((t >= lo) & (t < hi)).sum()) for lo, hi in zip(edges[:-1], edges[1:])]
    assert frames.sum((1, 2, 3)).astype(int).tolist() == expected
    count = events_to_frames(nmnist, (34, 34), 8, 'count').sum((1, 2, 3))
    assert sorted(set(count.astype(int).tolist())) == [540, 541]  # 4325 = 5 * 540 + 3 * 541


def test_tiny_stream_by_hand():
    ev = dict(t=np.array([0, 1, 2, 3, 9]), x=np.array([0, 1, 1, 2, 0]), y=np.array([0, 0, 0, 1, 1]),
              p=np.array([1, 0, 0, 1, 1], np.uint8))
    f = events_to_frames(ev, (3, 2), 2, 'time')  # bins [0, 5) and [5, 10)
    assert f[0, 0].tolist() == [[0, 2, 0], [0, 0, 0]]
    assert f[0, 1].tolist() == [[1, 0, 0], [0, 0, 1]]
    assert f[1, 1].tolist() == [[0, 0, 0], [1, 0, 0]] and f[1, 0].sum() == 0
    c = events_to_frames(ev, (3, 2), 2, 'count')  # event k -> bin k * 2 // 5: 3 then 2 events
    assert c[0].sum() == 3 and c[1].sum() == 2 and c[1, 1].tolist() == [[0, 0, 0], [1, 0, 1]]
    with pytest.raises(ValueError, match=r'outside the sensor size \(width, height\) = \(2, 2\)'):
        events_to_frames(ev, (2, 2), 2)
    with pytest.raises(ValueError, match="split_by must be 'time' or 'count'"):
        events_to_frames(ev, (3, 2), 2, 'number')
    empty = {k: v[:0] for k, v in ev.items()}
    assert events_to_frames(empty, (3, 2), 4, 'count').sum() == 0
    clipped = EventsToFrames(2, max_count=1).transform(dict(events=ev, sensor_size=(3, 2)))['img']
    assert clipped[0, 0].tolist() == [[0, 1, 0], [0, 0, 0]]


def test_event_window_conserves_and_is_deterministic(nmnist):
    load = LoadEvents(sensor_size=(34, 34))
    path = str(SHARED_EVENTS / 'nmnist_sample.bin')
    window = SampleEventWindow(duration=100_000, test_mode=True)
    to_frames = EventsToFrames(num_bins=8)
    outs = []
    for seed in (0, 1):
        np.random.seed(seed)
        r = to_frames(window(load(dict(event_path=path))))
        outs.append(r['img'])
    np.testing.assert_array_equal(outs[0], outs[1])
    start, end = r['event_window']
    t = nmnist['t']
    assert end - start == 100_000
    assert start - t[0] == (int(t[-1]) + 1 - t[0] - 100_000) // 2  # centred
    assert r['img'].sum() == ((t >= start) & (t < end)).sum()
    # training windows move, and still conserve the events inside them
    train = SampleEventWindow(duration=100_000)
    starts = set()
    for seed in range(6):
        np.random.seed(seed)
        r = to_frames(train(load(dict(event_path=path))))
        s, e = r['event_window']
        starts.add(s)
        assert r['img'].sum() == ((t >= s) & (t < e)).sum()
    assert len(starts) > 1
    # a recording shorter than the window is kept whole
    r = SampleEventWindow(duration=10**9, test_mode=True)(load(dict(event_path=path)))
    assert len(r['events']['t']) == 4325


def test_load_events_needs_sensor_size(nmnist):
    with pytest.raises(KeyError, match='needs a sensor size'):
        LoadEvents()(dict(event_path=str(SHARED_EVENTS / 'nmnist_sample.bin')))
    r = LoadEvents()(dict(event_path=str(SHARED_EVENTS / 'nmnist_sample_txyp.npz'),
                          sensor_size=(34, 34)))
    assert r['img_shape'] == (34, 34) and len(r['events']['t']) == 4325


def test_dvxplorer_to_frames():
    if not SHARED_EVENTS.is_dir():
        pytest.skip('real event recordings not found')
    r = LoadEvents(sensor_size=(320, 240))(
        dict(event_path=str(SHARED_EVENTS / 'dvxplorer_sample_txyp.npz')))
    img = EventsToFrames(num_bins=8, split_by='time')(r)['img']
    assert img.shape == (8, 2, 240, 320) and img.sum() == 111954


# ---------------------------------------------------------------------------- frame clips
def test_natural_order_and_clip_sampling(tmp_path):
    for i in (10, 2, 1, 0, 11, 3, 4, 5, 6, 7, 8, 9):
        Image.fromarray(np.full((4, 6), i * 20, np.uint8)).save(tmp_path / f'img_{i}.png')
    (tmp_path / 'notes.txt').write_text('not a frame')
    paths = list_frames(tmp_path)
    assert [Path(p).name for p in paths] == [f'img_{i}.png' for i in range(12)]
    test = SampleFrameClip(clip_len=8, test_mode=True)
    for seed in range(3):
        np.random.seed(seed)
        assert test(dict(frame_dir=str(tmp_path)))['frame_inds'].tolist() == list(range(2, 10))
    train = SampleFrameClip(clip_len=8)
    starts = set()
    for seed in range(30):
        np.random.seed(seed)
        starts.add(int(train(dict(frame_dir=str(tmp_path)))['frame_inds'][0]))
    assert starts == {0, 1, 2, 3, 4}
    r = LoadFrameClip()(test(dict(frame_dir=str(tmp_path))))
    assert r['img'].shape == (8, 4, 6)
    assert r['img'][:, 0, 0].tolist() == [i * 20 for i in range(2, 10)]


def test_short_clip_padding(tmp_path):
    for i in range(5):
        Image.fromarray(np.full((4, 6), 100, np.uint8)).save(tmp_path / f'{i}.png')
    r = SampleFrameClip(clip_len=8, test_mode=True)(dict(frame_dir=str(tmp_path)))
    assert r['frame_inds'].tolist() == [0, 1, 2, 3, 4, -1, -1, -1]
    r = FramesToPolarity()(LoadFrameClip()(r))
    assert r['img'].shape == (8, 2, 4, 6)
    assert r['img'][:5, 1].min() == 1.0 and r['img'][5:].sum() == 0  # padding stays empty
    loop = SampleFrameClip(clip_len=8, test_mode=True, short_clip='loop')
    assert loop(dict(frame_dir=str(tmp_path)))['frame_inds'].tolist() == [0, 1, 2, 3, 4, 0, 1, 2]
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match='no frames'):
        SampleFrameClip()(dict(frame_dir=str(empty)))


def test_polarity_thresholds_by_hand():
    gray = np.array([[[0, 30, 31, 76, 77, 128, 198, 199, 255]]], np.uint8)
    out = FramesToPolarity()(dict(img=gray))['img']
    assert out.shape == (1, 2, 1, 9)
    assert out[0, 0, 0].tolist() == [1, 1, 0, 0, 0, 0, 0, 0, 0]  # < 0.12 (30/255 = 0.118)
    assert out[0, 1, 0].tolist() == [0, 0, 0, 0, 1, 1, 1, 0, 0]  # > 0.3, >0.78 capped to 0.3
    with pytest.raises(ValueError, match=r'grayscale frames \[T, H, W\]'):
        FramesToPolarity()(dict(img=np.zeros((2, 2, 4, 4), np.uint8)))


def _upstream_frames(paths) -> torch.Tensor:
    """The upstream HAR-DVS frame route, written out with torchvision for comparison."""
    import torchvision.transforms as T
    tf = T.Compose([T.Resize(256, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(224),
                    T.ToTensor()])
    out = torch.zeros(len(paths), 2, 224, 224)
    for i, p in enumerate(paths):
        g = tf(Image.open(p).convert('L'))[0]
        out[i, 0] = (g < 0.12).float()
        out[i, 1] = (torch.where(g > 0.78, torch.tensor(0.3), g) > 0.3).float()
    return out


def test_frame_route_matches_upstream_on_sample():
    clip = SAMPLE / 'rawframes' / 'action_001' / 'dvxplorer_seg1'
    pipeline = [SampleFrameClip(8, test_mode=True), LoadFrameClip(), ResizeClip(256),
                CenterCropClip(224), FramesToPolarity(), PackEventInputs()]
    r = dict(frame_dir=str(clip), gt_label=0)
    for t in pipeline:
        r = t(r)
    inputs = r['inputs']
    assert inputs.shape == (8, 2, 224, 224) and inputs.dtype == torch.float32
    assert r['data_samples'].frame_inds.tolist() == list(range(1, 9))
    expected = _upstream_frames(list_frames(clip)[1:9])
    assert inputs.sum() > 1000  # the sample clip really has events in it
    assert torch.equal(inputs, expected)


def test_rendered_frames_equal_event_bins():
    """The bundled frames were rendered from the bundled events: both routes agree."""
    for name in ('action_001/dvxplorer_seg0', 'action_002/nmnist_saccade2'):
        r = LoadEvents(sensor_size=(346, 260))(
            dict(event_path=str(SAMPLE / 'events' / f'{name}.npz')))
        counts = EventsToFrames(num_bins=10)(r)['img']
        r = dict(frame_dir=str(SAMPLE / 'rawframes' / name))
        for t in (SampleFrameClip(10, test_mode=True), LoadFrameClip(), FramesToPolarity()):
            r = t(r)
        off, on = counts[:, 0] > 0, counts[:, 1] > 0
        np.testing.assert_array_equal(r['img'][:, 0], off)
        np.testing.assert_array_equal(r['img'][:, 1], on & ~off)


def test_resize_crop_flip():
    img = np.random.RandomState(0).randint(0, 255, (3, 260, 346)).astype(np.uint8)
    r = ResizeClip(256)(dict(img=img))
    assert r['img'].shape == (3, 256, 340)  # torchvision's Resize(256) truncation
    r = CenterCropClip(224)(r)
    assert r['img'].shape == (3, 224, 224) and r['img_shape'] == (224, 224)
    counts = np.random.RandomState(1).poisson(1.0, (2, 2, 260, 346)).astype(np.float32)
    out = ResizeClip((173, 130), interpolation='area')(dict(img=counts))['img']
    assert out.shape == (2, 2, 130, 173)
    np.testing.assert_allclose(out.sum() * 4, counts.sum(), rtol=1e-4)  # 2x2 area = mean
    with pytest.raises(ValueError, match=r'crop 300x300 \(w x h\) is larger than the frames'):
        CenterCropClip(300)(dict(img=img))
    clip = np.arange(2 * 2 * 3 * 4, dtype=np.float32).reshape(2, 2, 3, 4)
    flipped = RandomFlipClip(prob=1.0)(dict(img=clip.copy()))
    np.testing.assert_array_equal(flipped['img'], clip[..., ::-1])
    assert flipped['flip'] is True
    assert RandomFlipClip(prob=0.0)(dict(img=clip.copy()))['flip'] is False


def test_pack_and_preprocess_time_first():
    rng = np.random.RandomState(0)
    clips = [rng.randint(0, 3, (8, 2, 16, 16)).astype(np.float32) for _ in range(3)]
    pack = PackEventInputs()
    packed = [pack(dict(img=c, gt_label=i)) for i, c in enumerate(clips)]
    assert packed[0]['inputs'].shape == (8, 2, 16, 16)
    with pytest.raises(ValueError, match=r'expects a \[T, C, H, W\] clip, got shape \(2, 16, 16\)'):
        pack(dict(img=clips[0][0], gt_label=0))
    from mmengine.dataset import pseudo_collate
    pre = MODELS.build(dict(type='EventClsDataPreprocessor', num_classes=300))
    data = pre(pseudo_collate(packed), training=True)
    assert data['inputs'].shape == (8, 3, 2, 16, 16)  # [T, B, C, H, W]
    for i, c in enumerate(clips):
        assert torch.equal(data['inputs'][:, i], torch.from_numpy(c))
    assert [int(s.gt_label) for s in data['data_samples']] == [0, 1, 2]
    with pytest.raises(ValueError, match='to_rgb=True makes no sense'):
        MODELS.build(dict(type='EventClsDataPreprocessor', to_rgb=True))


def test_registered():
    for name in ('LoadEvents', 'SampleEventWindow', 'EventsToFrames', 'SampleFrameClip',
                 'LoadFrameClip', 'ResizeClip', 'CenterCropClip', 'RandomFlipClip',
                 'FramesToPolarity', 'PackEventInputs'):
        assert TRANSFORMS.get(name) is not None, name
