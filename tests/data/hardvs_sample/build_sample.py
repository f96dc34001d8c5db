"""Rebuild this HAR-DVS-layout sample from the two real recordings in ../shared/data/events.

    python tests/data/hardvs_sample/build_sample.py [--shared ../shared]

Self-contained (numpy + Pillow) so the fixture does not depend on the code it tests. See
README.md for what the files are.
"""
import argparse
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
SENSOR = (346, 260)  # HAR-DVS (width, height); both recordings fit inside it unchanged
NUM_FRAMES = 10      # rendered frames per clip

# (class folder, label, clip name, source file, [start, end) in us relative to the first event)
CLIPS = [
    ('action_001', 0, 'dvxplorer_seg0', 'dvxplorer_sample_txyp.npz', (50_000, 150_000)),
    ('action_001', 0, 'dvxplorer_seg1', 'dvxplorer_sample_txyp.npz', (250_000, 350_000)),
    ('action_001', 0, 'dvxplorer_seg2', 'dvxplorer_sample_txyp.npz', (450_000, 550_000)),
    ('action_002', 1, 'nmnist_saccade0', 'nmnist_sample_txyp.npz', (0, 105_000)),
    ('action_002', 1, 'nmnist_saccade1', 'nmnist_sample_txyp.npz', (105_000, 210_000)),
    ('action_002', 1, 'nmnist_saccade2', 'nmnist_sample_txyp.npz', (210_000, 320_000)),
]
VAL_CLIPS = {'dvxplorer_seg2', 'nmnist_saccade2'}


def render(ev: dict) -> list:
    """NUM_FRAMES equal-duration bins from the first event to just past the last, as gray
    images: white background, OFF events black (0), ON events mid-gray (128); OFF wins where a
    pixel has both."""
    w, h = SENSOR
    start, end = int(ev['t'][0]), int(ev['t'][-1]) + 1
    bins = (ev['t'] - start) * NUM_FRAMES // (end - start)
    frames = []
    for i in range(NUM_FRAMES):
        m = bins == i
        img = np.full((h, w), 255, np.uint8)
        on = m & (ev['p'] == 1)
        off = m & (ev['p'] == 0)
        img[ev['y'][on], ev['x'][on]] = 128
        img[ev['y'][off], ev['x'][off]] = 0
        frames.append(img)
    return frames


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('--shared', default=str(HERE.parents[2].parent / 'shared'))
    src = Path(parser.parse_args().shared) / 'data' / 'events'
    for sub in ('events', 'rawframes'):
        shutil.rmtree(HERE / sub, ignore_errors=True)
    lines = {k: [] for k in ('events_train', 'events_val', 'frames_train', 'frames_val')}
    for folder, label, name, source, (a, b) in CLIPS:
        with np.load(src / source) as npz:
            ev = {k: npz[k] for k in 'txyp'}
        t0 = int(ev['t'][0])
        start, end = t0 + a, t0 + b
        keep = (ev['t'] >= start) & (ev['t'] < end)
        clip = {k: v[keep] for k, v in ev.items()}
        (HERE / 'events' / folder).mkdir(parents=True, exist_ok=True)
        np.savez_compressed(HERE / 'events' / folder / f'{name}.npz', **clip)
        frame_dir = HERE / 'rawframes' / folder / name
        frame_dir.mkdir(parents=True, exist_ok=True)
        for i, img in enumerate(render(clip), 1):
            Image.fromarray(img, mode='L').save(frame_dir / f'img_{i:05d}.png', optimize=True)
        split = 'val' if name in VAL_CLIPS else 'train'
        lines[f'events_{split}'].append(f'events/{folder}/{name}.npz {label}')
        lines[f'frames_{split}'].append(f'rawframes/{folder}/{name} {NUM_FRAMES} {label}')
        print(f'{name}: {int(keep.sum())} events, window [{start}, {end}) us')
    for key, ls in lines.items():
        (HERE / f'ann_{key}.txt').write_text('\n'.join(ls) + '\n')


if __name__ == '__main__':
    main()
