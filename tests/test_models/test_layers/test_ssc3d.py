"""3D Spike Sparse Convolution and Spike Voxel Coding (spconv on CPU); the E-3DSNN model is tested
in tests/test_points/."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmspike.models.layers.ssc import spconv_available

pytestmark = pytest.mark.skipif(not spconv_available(), reason='spconv is not installed')

if spconv_available():
    import spconv.pytorch as spconv

    from mmspike.models.layers import (SpikeSparseBasicBlock3d, SpikeSparseConv3d, batch_voxelize,
                                       voxelize)


def test_voxelize_by_hand():
    pts = torch.tensor([[0.01, 0.02, 0.03, 1.0],
                        [0.04, 0.01, 0.00, 3.0],   # same 0.05-voxel as the first point
                        [0.26, 0.02, 0.11, 5.0],
                        [-0.04, 0.0, 0.0, 7.0]])   # a voxel at -1: coordinates are shifted
    coords, feats, inverse = voxelize(pts, 0.05)
    assert coords.tolist() == [[0, 0, 0], [1, 0, 0], [6, 0, 2]]
    assert inverse.tolist() == [1, 1, 2, 0]
    torch.testing.assert_close(feats[1], (pts[0] + pts[1]) / 2)
    torch.testing.assert_close(feats[0], pts[3])
    with pytest.raises(ValueError, match='grid_size'):
        voxelize(pts, 0.0)


def test_batch_voxelize():
    clouds = [torch.rand(50, 6), torch.rand(30, 6) * 0.5]
    x = batch_voxelize(clouds, 0.1, shape_multiple=16)
    assert x.indices.dtype == torch.int32 and x.indices.is_contiguous()
    assert x.batch_size == 2 and all(s % 16 == 0 and s >= 16 for s in x.spatial_shape)
    assert set(x.indices[:, 0].tolist()) == {0, 1}
    with pytest.raises(ValueError, match='same channels'):
        batch_voxelize([torch.rand(5, 6), torch.rand(5, 4)], 0.1)


def dense_reference(conv_weight, x, stride=1):
    """Dense conv3d of the sparse input, read back at the given output sites."""
    w = conv_weight.permute(0, 4, 1, 2, 3)  # spconv [O, k, k, k, I] -> [O, I, k, k, k]
    pad = w.shape[-1] // 2 if stride == 1 else 0
    return F.conv3d(x.dense(), w, stride=stride, padding=pad)


def test_submanifold_spike_conv_matches_dense_with_two_threads():
    """Neuron -> SubMConv3d -> BN equals the dense computation at the active voxels, forward and
    backward, with 2 intra-op threads (spconv's own CPU kernel is wrong there; the layer installs
    mmspike's CPU support)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for seed in range(8):
            torch.manual_seed(seed)
            occ = torch.rand(2, 8, 8, 8) < 0.3
            idx = occ.nonzero().int().contiguous()
            feats = (torch.randn(idx.shape[0], 8) * 2 + 1).requires_grad_()
            x = spconv.SparseConvTensor(feats, idx, [8, 8, 8], 2)
            layer = SpikeSparseConv3d(8, 16, 3).eval()
            y = layer(x)
            assert torch.equal(y.indices, idx)  # submanifold: same active set
            spikes = layer.neuron(feats.unsqueeze(0)).squeeze(0)
            assert set(spikes.unique().tolist()) <= {0., 1., 2., 3., 4.}  # integers, D=4
            ref = dense_reference(layer.conv.weight, x.replace_feature(spikes))
            ref = ref.permute(0, 2, 3, 4, 1)[occ]
            ref = layer.bn(ref)
            torch.testing.assert_close(y.features, ref, rtol=1e-4, atol=1e-4)
            grad = torch.randn_like(ref)
            g_sparse = torch.autograd.grad((y.features * grad).sum(), feats)[0]
            g_dense = torch.autograd.grad((ref * grad).sum(), feats)[0]
            torch.testing.assert_close(g_sparse, g_dense, rtol=1e-4, atol=1e-4)
    finally:
        torch.set_num_threads(threads)


def test_downsampling_spike_conv():
    torch.manual_seed(0)
    occ = torch.rand(1, 8, 8, 8) < 0.2
    idx = occ.nonzero().int().contiguous()
    x = spconv.SparseConvTensor(torch.rand(idx.shape[0], 4) * 4, idx, [8, 8, 8], 1)
    layer = SpikeSparseConv3d(4, 8, 2, stride=2, norm=False)
    y = layer(x)
    out_occ = F.max_pool3d(occ[:, None].float(), 2)[:, 0] > 0  # every cell an input reaches
    assert y.spatial_shape == [4, 4, 4] and y.indices.shape[0] == int(out_occ.sum())
    ref = dense_reference(layer.conv.weight,
                          x.replace_feature(layer.neuron(x.features[None])[0]), stride=2)
    torch.testing.assert_close(y.dense(), ref * out_occ[:, None], rtol=1e-5, atol=1e-5)


def test_basic_block_adds_residuals_to_the_membrane():
    torch.manual_seed(0)
    block = SpikeSparseBasicBlock3d(4).eval()
    idx = (torch.rand(1, 6, 6, 6) < 0.3).nonzero().int().contiguous()
    x = spconv.SparseConvTensor(torch.randn(idx.shape[0], 4), idx, [6, 6, 6], 1)
    for conv in (block.conv1, block.conv2, block.conv3):
        nn.init.zeros_(conv.conv.weight)  # every branch outputs BN(0) = 0 in eval mode
    torch.testing.assert_close(block(x).features, x.features)
    nn.init.normal_(block.conv1.conv.weight)
    u = block.conv1(x).features + x.features
    out = block(x).features
    torch.testing.assert_close(out, u)  # conv2/conv3 still zero: out = u = x + SSC(x)
