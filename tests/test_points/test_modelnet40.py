"""ModelNet40Dataset on the bundled real sample in both release layouts, and its errors."""
import shutil
from pathlib import Path

import numpy as np
import pytest

from mmspike.points.datasets import (MODELNET40_CLASSES, ModelNet40Dataset,
                                     farthest_point_sample, read_resampled_txt)

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / 'tests/data/modelnet40_sample'
TXT = SAMPLE / 'modelnet40_normal_resampled'
H5 = SAMPLE / 'modelnet40_ply_hdf5_2048'


def test_resampled_layout():
    ds = ModelNet40Dataset(str(TXT), split='train')
    assert ds.layout == 'resampled' and len(ds) == 2
    assert ds.CLASSES == MODELNET40_CLASSES
    a, c = ds.get_data_info(0), ds.get_data_info(1)
    assert (a['gt_label'], c['gt_label']) == (0, 8)  # airplane, chair
    assert a['points'].shape == (1000, 6) and a['points'].dtype == np.float32
    # the first line of airplane_0126.txt, parsed
    first = open(TXT / 'airplane/airplane_0126.txt').readline().strip().split(',')
    np.testing.assert_array_equal(a['points'][0], np.array(first, dtype=np.float32))
    test = ModelNet40Dataset(str(TXT), split='test', use_normals=False, num_points=100)
    assert [test.get_data_info(i)['points'].shape for i in range(2)] == [(100, 3)] * 2


def test_hdf5_layout_matches_the_text_layout():
    ds = ModelNet40Dataset(str(H5), split='test')
    assert ds.layout == 'hdf5' and len(ds) == 2 and ds.CLASSES == MODELNET40_CLASSES
    txt = ModelNet40Dataset(str(TXT), split='test', num_points=512)
    for i in range(2):
        h, t = ds.get_data_info(i), txt.get_data_info(i)
        assert h['gt_label'] == t['gt_label']
        np.testing.assert_array_equal(h['points'], t['points'])  # same real points, two layouts


def test_farthest_point_sampling(tmp_path):
    pts = read_resampled_txt(str(TXT / 'chair/chair_0391.txt'))
    idx = farthest_point_sample(pts, 64)
    assert idx[0] == 0 and len(set(idx.tolist())) == 64
    # each chosen point is the farthest from those chosen before it
    chosen = pts[idx[:10], :3]
    d = np.min(((pts[:, None, :3] - chosen[None, :9]) ** 2).sum(-1), 1)
    assert np.isclose(d[idx[9]], d.max())
    ds = ModelNet40Dataset(str(TXT), split='train', num_points=32, sampling='fps')
    assert ds.get_data_info(0)['points'].shape == (32, 6)
    cache = tmp_path / 'fps'
    cached = ModelNet40Dataset(str(TXT), split='train', num_points=32, sampling='fps',
                               sampling_cache=str(cache))
    np.testing.assert_array_equal(cached.get_data_info(0)['points'],
                                  ds.get_data_info(0)['points'])
    saved = cache / 'fps32/airplane_0126.npy'
    assert saved.is_file() and np.load(saved).shape == (32, )
    np.testing.assert_array_equal(cached.get_data_info(0)['points'],  # read back from the cache
                                  ds.get_data_info(0)['points'])
    np.save(saved, np.arange(31))
    with pytest.raises(ValueError, match='sampling cache .* does not fit'):
        cached.get_data_info(0)
    with pytest.raises(ValueError, match='fewer than num_points=2000'):
        ModelNet40Dataset(str(TXT), split='train', num_points=2000).get_data_info(0)


def copy_layout(src, tmp_path):
    dst = tmp_path / src.name
    shutil.copytree(src, dst)
    return dst


def test_missing_and_corrupt_text_files(tmp_path):
    with pytest.raises(FileNotFoundError, match='data_root is not a folder'):
        ModelNet40Dataset(str(tmp_path / 'nowhere'))
    with pytest.raises(FileNotFoundError, match='neither modelnet40_shape_names.txt'):
        ModelNet40Dataset(str(tmp_path))
    root = copy_layout(TXT, tmp_path)
    (root / 'chair/chair_0391.txt').unlink()
    with pytest.raises(FileNotFoundError, match='1 point files .* missing.*chair_0391'):
        ModelNet40Dataset(str(root), split='train')
    (root / 'modelnet40_test.txt').unlink()
    with pytest.raises(FileNotFoundError, match='test split file not found'):
        ModelNet40Dataset(str(root), split='test')

    root = copy_layout(TXT, tmp_path / 'b')
    path = root / 'airplane/airplane_0126.txt'
    lines = path.read_text().splitlines()
    path.write_text('\n'.join(lines[:5] + ['0.1,0.2,zero,0,0,1'] + lines[6:]) + '\n')
    ds = ModelNet40Dataset(str(root), split='train')
    with pytest.raises(ValueError, match='airplane_0126.txt is not a resampled point file'):
        ds.get_data_info(0)
    path.write_text('\n'.join(line.rsplit(',', 1)[0] for line in lines) + '\n')
    with pytest.raises(ValueError, match='5 columns per line, expected 6'):
        ds.get_data_info(0)
    path.write_text('')
    with pytest.raises(ValueError, match='holds no points'):
        ds.get_data_info(0)
    (root / 'modelnet40_train.txt').write_text('spaceship_0001\n')
    with pytest.raises(ValueError, match="unknown class 'spaceship'"):
        ModelNet40Dataset(str(root), split='train')


def test_missing_and_corrupt_hdf5_files(tmp_path):
    import h5py
    root = copy_layout(H5, tmp_path)
    (root / 'ply_data_train0.h5').write_bytes(b'not an HDF5 file')
    with pytest.raises(OSError, match='cannot read HDF5 file .*ply_data_train0.h5'):
        ModelNet40Dataset(str(root), split='train')
    (root / 'ply_data_train0.h5').unlink()
    with pytest.raises(FileNotFoundError, match='HDF5 file not found: .*ply_data_train0.h5'):
        ModelNet40Dataset(str(root), split='train')
    with h5py.File(root / 'ply_data_test0.h5', 'r+') as f:
        del f['normal']
    with pytest.raises(KeyError, match=r"lacks \['normal'\] \(set use_normals=False"):
        ModelNet40Dataset(str(root), split='test')
    ds = ModelNet40Dataset(str(root), split='test', use_normals=False)
    assert ds.get_data_info(1)['points'].shape == (512, 3)
    with h5py.File(root / 'ply_data_test0.h5', 'r+') as f:
        f['label'][1, 0] = 40
    with pytest.raises(ValueError, match='labels outside 0..39'):
        ModelNet40Dataset(str(root), split='test', use_normals=False)


def test_bad_arguments():
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        ModelNet40Dataset(str(TXT), split='val')
    with pytest.raises(ValueError, match='layout must be one of'):
        ModelNet40Dataset(str(TXT), layout='ply')
    with pytest.raises(ValueError, match="sampling must be 'first' or 'fps'"):
        ModelNet40Dataset(str(TXT), sampling='random')
