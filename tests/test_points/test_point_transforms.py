"""Point transforms of the E-3DSNN recipe: Spike Voxel Coding (grid sampling) and friends."""
import numpy as np
import pytest
import torch

from mmspike.points.transforms import (NormalizePoints, PackPointsInputs, RandomScalePoints,
                                       RandomShiftPoints, SpikeVoxelCoding)


def cloud():
    # x, y, z, feature: the first two points share the 0.05 voxel (0, 0, 0)
    return np.array([[0.01, 0.02, 0.03, 1.0],
                     [0.04, 0.01, 0.00, 3.0],
                     [0.26, 0.02, 0.11, 5.0],
                     [-0.04, 0.0, 0.0, 7.0]], dtype=np.float32)


def test_spike_voxel_coding_by_hand():
    out = SpikeVoxelCoding(grid_size=0.05, mode='first')(dict(points=cloud()))
    # floor(xyz / 0.05) = (0,0,0), (0,0,0), (5,0,2), (-1,0,0); shifted by the minimum (-1,0,0)
    assert out['voxel_coords'].tolist() == [[0, 0, 0], [1, 0, 0], [6, 0, 2]]
    assert out['voxel_coords'].dtype == np.int32 and out['voxel_feats'].dtype == np.float32
    np.testing.assert_array_equal(out['voxel_feats'][:, 3], [7.0, 1.0, 5.0])
    mean = SpikeVoxelCoding(grid_size=0.05, mode='mean')(dict(points=cloud()))
    np.testing.assert_allclose(mean['voxel_feats'][1], (cloud()[0] + cloud()[1]) / 2)
    # 'random' keeps one real point per voxel, and both points of voxel 1 are drawn sometimes
    np.random.seed(0)
    picks = {float(SpikeVoxelCoding(0.05)(dict(points=cloud()))['voxel_feats'][1, 3])
             for _ in range(40)}
    assert picks == {1.0, 3.0}


def test_spike_voxel_coding_errors():
    with pytest.raises(ValueError, match='grid_size must be > 0'):
        SpikeVoxelCoding(0.0)
    with pytest.raises(ValueError, match='mode must be one of'):
        SpikeVoxelCoding(0.01, mode='center')
    with pytest.raises(ValueError, match='empty point cloud'):
        SpikeVoxelCoding(0.01)(dict(points=np.zeros((0, 6), np.float32)))
    bad = cloud()
    bad[2, 0] = np.nan
    with pytest.raises(ValueError, match='NaN or Inf'):
        SpikeVoxelCoding(0.01)(dict(points=bad))
    with pytest.raises(ValueError, match=r'\[N, C >= 3\]'):
        SpikeVoxelCoding(0.01)(dict(points=np.zeros((5, 2), np.float32)))


def test_normalize_scale_shift():
    pts = cloud()
    out = NormalizePoints()(dict(points=pts.copy()))['points']
    np.testing.assert_allclose(out[:, :3].mean(0), 0, atol=1e-6)
    assert np.isclose(np.sqrt((out[:, :3] ** 2).sum(1)).max(), 1.0)
    np.testing.assert_array_equal(out[:, 3], pts[:, 3])  # features untouched
    with pytest.raises(ValueError, match='all points coincide'):
        NormalizePoints()(dict(points=np.ones((3, 6), np.float32)))
    np.random.seed(1)
    scaled = RandomScalePoints((0.9, 1.1))(dict(points=out.copy()))['points']
    ratio = scaled[:, :3] / out[:, :3]
    assert np.allclose(ratio, ratio[0, 0]) and 0.9 <= ratio[0, 0] <= 1.1
    shifted = RandomShiftPoints()(dict(points=out.copy()))['points']
    delta = shifted[:, :3] - out[:, :3]
    assert np.allclose(delta, delta[0]) and (np.abs(delta[0]) <= 0.2).all()
    with pytest.raises(ValueError, match='scale must be'):
        RandomScalePoints((1.1, 0.9))


def test_pack_points_inputs():
    res = SpikeVoxelCoding(0.05, mode='first')(dict(points=cloud(), gt_label=8, sample_idx=3))
    packed = PackPointsInputs()(res)
    assert set(packed['inputs']) == {'coords', 'feats'}
    assert packed['inputs']['coords'].dtype == torch.int32
    assert packed['data_samples'].gt_label.tolist() == [8]
    assert packed['data_samples'].sample_idx == 3
    raw = PackPointsInputs()(dict(points=cloud(), gt_label=1))
    assert raw['inputs'].shape == (4, 4)
