"""Rebuild the DVS128 Gesture- and CIFAR10-DVS-layout samples from the real recordings in
../shared/data/events (see PROVENANCE.md in both sample folders).

    python tests/data/dvs_gesture_sample/build_sample.py [--shared ../shared]

Self-contained (numpy only; it writes the containers from the format descriptions) so the
fixtures do not depend on the readers they test.
"""
import argparse
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CIFAR = HERE.parent / 'cifar10_dvs_sample'
# DVXplorer (320x240): the central 128x128 window, x in [96, 224), y in [56, 184).
CROP_X, CROP_Y = 96, 56


def load(src: Path, name: str) -> dict:
    with np.load(src / name) as npz:
        ev = {k: npz[k].astype(np.int64) for k in 'txyp'}
    ev['t'] = ev['t'] - ev['t'][0]  # rebase: legacy AEDAT timestamps count from the camera reset
    return ev


def crop128(ev: dict) -> dict:
    keep = ((ev['x'] >= CROP_X) & (ev['x'] < CROP_X + 128) & (ev['y'] >= CROP_Y) &
            (ev['y'] < CROP_Y + 128))
    out = {k: v[keep] for k, v in ev.items()}
    out['x'], out['y'] = out['x'] - CROP_X, out['y'] - CROP_Y
    return out


def window(ev: dict, a: int, b: int) -> dict:
    keep = (ev['t'] >= a) & (ev['t'] < b)
    return {k: v[keep] for k, v in ev.items()}


def aedat31(ev: dict, source: str, packet: int = 4096) -> bytes:
    """cAER AEDAT 3.1: header, then polarity packets (28-byte header + 8-byte events)."""
    head = (b'#!AER-DAT3.1\r\n#Format: RAW\r\n' + f'#Source 1: {source}\r\n'.encode() +
            b'#Start-Time: 2017-01-01 00:00:00 (TZ+0000)\r\n#!END-HEADER\r\n')
    out = [head]
    for lo in range(0, len(ev['t']), packet):
        sl = slice(lo, lo + packet)
        t = ev['t'][sl]
        assert t[-1] < (1 << 31)  # one overflow epoch: these clips are short
        word = (ev['x'][sl] << 17) | (ev['y'][sl] << 2) | (ev['p'][sl] << 1) | 1
        n = len(t)
        out.append(np.array([1, 1], '<i2').tobytes() + np.array([8, 4, 0, n, n, n],
                                                                 '<i4').tobytes())
        out.append(np.stack([word, t], 1).astype('<u4').tobytes())
    return b''.join(out)


def aedat2_dvs128(ev: dict) -> bytes:
    """jAER AEDAT 2.0: '#' header lines, then big-endian (address, timestamp) pairs with the
    DVS128 address layout (bit 0 polarity, bits 1-7 x, bits 8-14 y)."""
    head = (b'#!AER-DAT2.0\r\n# This is a raw AE data file - do not edit\r\n'
            b'# Data format is int32 address, int32 timestamp (8 bytes total), repeated for each '
            b'event\r\n# Timestamps tick is 1 us\r\n# AEChip: ch.unizh.ini.jaer.chip.retina.'
            b'DVS128\r\n')
    addr = (ev['y'] << 8) | (ev['x'] << 1) | ev['p']
    return head + np.stack([addr, ev['t']], 1).astype('>u4').tobytes()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('--shared', default=str(HERE.parents[2].parent / 'shared'))
    src = Path(parser.parse_args().shared) / 'data' / 'events'
    dvx = crop128(load(src, 'dvxplorer_sample_txyp.npz'))
    nmnist = load(src, 'nmnist_sample_txyp.npz')  # 34x34: fits the 128x128 frame unchanged

    # DVS128 Gesture layout: one recording per user/lighting + its labels csv.
    gest = HERE / 'DvsGesture'
    gest.mkdir(exist_ok=True)
    for name, ev, sensor in (('user01_fluorescent', dvx, 'DVXplorer (128x128 crop)'),
                             ('user24_led', nmnist, 'ATIS (N-MNIST)')):
        (gest / f'{name}.aedat').write_bytes(aedat31(ev, sensor))
        print(f'{name}.aedat: {len(ev["t"])} events, t in [0, {ev["t"][-1]}] us')

    # CIFAR10-DVS layout: <class>/cifar10_<class>_<i>.aedat
    clips = {'airplane': [window(nmnist, a, b) for a, b in
                          ((0, 105_000), (105_000, 210_000), (210_000, 320_000))],
             'automobile': [window(dvx, a, a + 100_000) for a in (50_000, 250_000, 450_000)]}
    for cls, evs in clips.items():
        (CIFAR / cls).mkdir(parents=True, exist_ok=True)
        for i, ev in enumerate(evs):
            ev = dict(ev, t=ev['t'] - ev['t'][0])
            (CIFAR / cls / f'cifar10_{cls}_{i}.aedat').write_bytes(aedat2_dvs128(ev))
            print(f'cifar10_{cls}_{i}.aedat: {len(ev["t"])} events')


if __name__ == '__main__':
    main()
