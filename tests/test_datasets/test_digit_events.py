"""Digit event streams (mmspike.datasets.digit_events): the simulated event camera and the
HAR-DVS route on them."""
import numpy as np
import pytest

from mmspike.datasets.digit_canvas import digits_split
from mmspike.datasets.digit_events import (DIGIT_EVENTS_SENSOR, build_digit_events,
                                           digit_to_events, saccade_offsets)


def test_blank_digit_gives_no_events():
    ev = digit_to_events(np.zeros((8, 8)))
    assert all(len(a) == 0 for a in ev.values())


def test_closed_saccade_path_balances_on_and_off_per_pixel():
    # The path ends where it starts, so every pixel's log intensity returns to its first value;
    # the reference then differs from it by less than C, so ON and OFF counts must be equal.
    images, _, _ = digits_split('test')
    for digit in images[:5]:
        ev = digit_to_events(digit)
        w, h = DIGIT_EVENTS_SENSOR
        assert len(ev['t']) > 500
        assert ev['x'].min() >= 0 and ev['x'].max() < w and ev['y'].max() < h
        assert (np.diff(ev['t']) >= 0).all() and ev['t'].max() <= 300_000
        net = np.zeros((h, w), np.int64)
        np.add.at(net, (ev['y'], ev['x']), np.where(ev['p'] == 1, 1, -1))
        assert not net.any()
        assert 0.3 < ev['p'].mean() < 0.7


def test_event_count_follows_the_contrast_threshold():
    digit = digits_split('test')[0][0]
    n = {c: len(digit_to_events(digit, contrast=c)['t']) for c in (0.15, 0.3, 0.6)}
    assert n[0.15] > 1.5 * n[0.3] > 1.5 * 1.5 * n[0.6] > 0


def test_saccades_form_a_closed_triangle():
    t, off = saccade_offsets(100, 2000, 2.0)
    assert t[-1] == 300_000 and len(t) == 151
    assert (off[0] == off[-1]).all() and np.abs(off).max() == 2.0


def test_dataset_through_the_hardvs_pipeline(tmp_path):
    from mmengine.registry import init_default_scope
    from mmspike.registry import DATASETS
    init_default_scope('mmpretrain')
    root = str(tmp_path / 'digit_events')
    ds = DATASETS.build(dict(
        type='mmspike.DigitEventsDataset', data_root=root, split='test', build_cfg=dict(max_per_split=6),
        pipeline=[dict(type='mmspike.LoadEvents'), dict(type='mmspike.EventsToFrames', num_bins=4),
                  dict(type='mmspike.ResizeClip', scale=(32, 32), interpolation='area'),
                  dict(type='mmspike.PackEventInputs')]))
    _, labels, _ = digits_split('test')
    assert len(ds) == 6
    sample = ds[0]
    assert tuple(sample['inputs'].shape) == (4, 2, 32, 32)
    assert (sample['inputs'].sum(dim=(1, 2, 3)) > 0).all()  # events in every time bin
    assert int(sample['data_samples'].gt_label) == labels[0]
    with pytest.raises(ValueError, match='was built with'):
        build_digit_events(root, max_per_split=7)
