"""Spike Sparse Convolution (2D): masks, dense reference, spconv backend and its CPU support."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmspike.models.layers import (ActiveSites, SparseBatchNorm2d, SparseConv2d, SpikeSparseConv2d,
                                   convert_to_ssc, downsample_mask)
from mmspike.models.layers.ssc import check_spconv_supported, spconv_available

needs_spconv = pytest.mark.skipif(not spconv_available(), reason='spconv is not installed')


def random_mask(n, h, w, ratio, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, h, w, generator=g) >= ratio  # True = active; ~ratio masked


def test_downsample_mask_is_nearest():
    mask = torch.tensor([[[1, 0, 1, 1, 0],
                          [0, 0, 0, 0, 0],
                          [0, 1, 1, 0, 1],
                          [1, 1, 1, 1, 1],
                          [1, 0, 0, 0, 1]]], dtype=torch.bool)
    out = downsample_mask(mask, 2, (3, 3))
    assert out.tolist() == [[[True, True, False], [False, True, True], [True, False, True]]]
    with pytest.raises(ValueError, match='ceil'):
        downsample_mask(mask, 2, (2, 2))


def test_dense_backend_is_gated_conv():
    torch.manual_seed(0)
    conv = SparseConv2d(3, 4, 3, stride=2, bias=True)
    x = torch.randn(2, 3, 9, 9, requires_grad=True)
    mask = random_mask(2, 9, 9, 0.5)
    y = conv(x, mask)
    out_mask = mask[:, ::2, ::2]
    ref = F.conv2d(x * mask[:, None], conv.weight, conv.bias, 2, 1) * out_mask[:, None]
    torch.testing.assert_close(y, ref)
    assert (y[~out_mask[:, None].expand_as(y)] == 0).all()  # the bias too stays out
    y.sum().backward()
    assert (x.grad.permute(0, 2, 3, 1)[~mask] == 0).all()  # inactive inputs: no gradient


def test_sparse_batchnorm_uses_active_sites_only():
    torch.manual_seed(0)
    bn = SparseBatchNorm2d(3, momentum=1.0)  # running stats = last batch statistics
    nn.init.normal_(bn.weight)
    nn.init.normal_(bn.bias)
    x = torch.randn(2, 3, 5, 5) * 3 + 1
    mask = random_mask(2, 5, 5, 0.6)
    y = bn(x, mask)
    act = x.permute(0, 2, 3, 1)[mask]  # [M, C]
    mean, var = act.mean(0), act.var(0, unbiased=False)
    ref = (act - mean) / torch.sqrt(var + bn.eps) * bn.weight + bn.bias
    torch.testing.assert_close(y.permute(0, 2, 3, 1)[mask], ref)
    assert (y.permute(0, 2, 3, 1)[~mask] == 0).all()
    torch.testing.assert_close(bn.running_mean, mean)
    torch.testing.assert_close(bn.running_var, act.var(0, unbiased=True))
    # eval: running statistics, zeros stay zeros
    bn.eval()
    y = bn(x, mask)
    assert (y.permute(0, 2, 3, 1)[~mask] == 0).all()


def test_from_conv_and_bn_share_parameters():
    conv, bn = nn.Conv2d(4, 8, 3, 2, 1), nn.BatchNorm2d(8)
    sconv, sbn = SparseConv2d.from_conv(conv), SparseBatchNorm2d.from_bn(bn)
    assert sconv.weight is conv.weight and sconv.bias is conv.bias
    assert sbn.running_mean is bn.running_mean and sbn.weight is bn.weight
    assert sconv.state_dict().keys() == conv.state_dict().keys()
    with pytest.raises(ValueError, match='padding'):
        SparseConv2d.from_conv(nn.Conv2d(4, 8, 3, 1, 0))
    with pytest.raises(ValueError, match='depthwise'):
        SparseConv2d(8, 8, 3, groups=2)


def test_missing_mask_is_an_error():
    sites = ActiveSites()
    conv = SparseConv2d(2, 2, 3, sites=sites)
    with pytest.raises(RuntimeError, match='without an active-site mask'):
        conv(torch.randn(1, 2, 4, 4))
    with sites.use(torch.ones(1, 4, 4, dtype=torch.bool)):
        with pytest.raises(RuntimeError, match='no active-site mask at resolution'):
            conv(torch.randn(1, 2, 8, 8))


def test_convert_to_ssc_refuses_leaking_layers():
    sites = ActiveSites()
    with pytest.raises(TypeError, match=r'1 \(MaxPool2d\)'):
        convert_to_ssc(nn.Sequential(nn.Conv2d(2, 2, 3, padding=1), nn.MaxPool2d(2)), sites)
    with pytest.raises(TypeError, match='GroupNorm'):
        convert_to_ssc(nn.Sequential(nn.GroupNorm(1, 2)), sites)


# (in, out, kernel, stride, groups): the conv shapes of E-SpikeFormer's CNN stages.
CONVS = [(3, 8, 7, 2, 1), (4, 8, 3, 1, 1), (4, 8, 3, 2, 1), (8, 8, 7, 1, 8), (8, 8, 3, 2, 8),
         (4, 8, 1, 1, 1), (4, 8, 1, 2, 1), (4, 4, 1, 1, 4)]


@needs_spconv
@pytest.mark.parametrize('ratio', [0.25, 0.5, 0.75])
@pytest.mark.parametrize('shape', CONVS, ids=lambda s: 'c{}-{}k{}s{}g{}'.format(*s))
def test_dense_and_spconv_agree(shape, ratio):
    cin, cout, k, s, g = shape
    torch.manual_seed(int(ratio * 100) + k)
    dense = SparseConv2d(cin, cout, k, s, groups=g, bias=True).double()
    sparse = copy.deepcopy(dense)
    sparse.backend = 'spconv'
    mask = random_mask(2, 15, 13, ratio, seed=k)
    x = torch.randn(2, cin, 15, 13, dtype=torch.float64)
    xd, xs = x.clone().requires_grad_(), x.clone().requires_grad_()
    yd, ys = dense(xd, mask), sparse(xs, mask)
    grad = torch.randn_like(yd)
    (yd * grad).sum().backward()
    (ys * grad).sum().backward()
    torch.testing.assert_close(ys, yd, rtol=0, atol=1e-12)
    torch.testing.assert_close(xs.grad, xd.grad, rtol=0, atol=1e-12)
    torch.testing.assert_close(sparse.weight.grad, dense.weight.grad, rtol=0, atol=1e-11)
    torch.testing.assert_close(sparse.bias.grad, dense.bias.grad, rtol=0, atol=1e-11)


@needs_spconv
@pytest.mark.parametrize('ratio', [0.25, 0.5, 0.75])
def test_spike_sparse_conv_backends_agree(ratio):
    """neuron -> SSC conv -> sparse BN in float32: outputs, input and parameter gradients."""
    torch.manual_seed(1)
    dense = SpikeSparseConv2d(8, 16, 3, stride=2)
    sparse = copy.deepcopy(dense)
    sparse.backend = 'spconv'
    mask = random_mask(2, 16, 16, ratio, seed=3)
    x = (torch.rand(1, 2, 8, 16, 16) * 6 - 1) * mask[None, :, None]
    xd, xs = x.clone().requires_grad_(), x.clone().requires_grad_()
    (yd, md), (ys, ms) = dense(xd, mask), sparse(xs, mask)
    assert torch.equal(md, ms) and torch.equal(md, mask[:, ::2, ::2])
    assert (yd.permute(0, 1, 3, 4, 2)[:, ~md] == 0).all()
    grad = torch.randn_like(yd)
    (yd * grad).sum().backward()
    (ys * grad).sum().backward()
    torch.testing.assert_close(ys, yd, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(xs.grad, xd.grad, rtol=1e-4, atol=1e-5)
    for (name, pd), ps in zip(dense.named_parameters(), sparse.parameters()):
        torch.testing.assert_close(ps.grad, pd.grad, rtol=1e-4, atol=1e-4, msg=name)


@needs_spconv
def test_spconv_backend_two_threads_leaves_the_thread_count_alone(monkeypatch):
    """spconv's own CPU conv sums go wrong with 2 intra-op threads (issue 679); with mmspike's
    CPU support every random call under 2 threads matches the dense reference, forward and
    backward, and nothing changes the process's thread count on the way."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)

    def refuse(n):
        raise AssertionError(f'torch.set_num_threads({n}) called during an SSC forward/backward')

    try:
        monkeypatch.setattr(torch, 'set_num_threads', refuse)
        for seed in range(8):
            torch.manual_seed(seed)
            groups = 16 if seed % 4 == 3 else 1  # the depthwise rulebook path too
            conv = SparseConv2d(16, 16 if groups > 1 else 32, 3, stride=1 + seed % 2,
                                groups=groups, bias=False, backend='spconv')
            mask = random_mask(2, 14, 14, 0.5, seed)
            x = torch.randn(2, 16, 14, 14, requires_grad=True)
            y = conv(x, mask)
            ref = F.conv2d(x * mask[:, None], conv.weight, None, conv.stride, 1, groups=groups)
            ref = ref * conv.output_mask(mask)[:, None]
            torch.testing.assert_close(y, ref, rtol=1e-4, atol=1e-4)
            g = torch.randn_like(y)
            gx, gw = torch.autograd.grad((y * g).sum(), (x, conv.weight))
            rx, rw = torch.autograd.grad((ref * g).sum(), (x, conv.weight))
            torch.testing.assert_close(gx, rx, rtol=1e-4, atol=1e-4)
            torch.testing.assert_close(gw, rw, rtol=1e-4, atol=1e-4)
            assert torch.get_num_threads() == 2
    finally:
        monkeypatch.undo()
        torch.set_num_threads(threads)


@needs_spconv
def test_cpu_support_installed_by_an_spconv_layer_and_idempotent():
    from spconv.pytorch import ops

    from mmspike.models.layers.spconv_support import (ensure_spconv_cpu_support,
                                                      spconv_cpu_support_installed)
    SparseConv2d(4, 4, 3, backend='spconv')  # the constructor installs it (documented)
    assert spconv_cpu_support_installed()
    kernels = (ops.indice_conv, ops.indice_conv_backward, ops.get_current_stream)
    assert ensure_spconv_cpu_support() is True
    assert (ops.indice_conv, ops.indice_conv_backward, ops.get_current_stream) == kernels
    if not torch.cuda.is_available():
        assert ops.get_current_stream() == 0


@needs_spconv
def test_ops_without_cpu_kernel_raise_clearly():
    import spconv.pytorch as spconv
    feats = torch.randn(3, 4)
    with pytest.raises(NotImplementedError, match='no CPU kernel for SparseGlobalMaxPool'):
        check_spconv_supported(spconv.SparseGlobalMaxPool(), feats)
    conv = spconv.SubMConv3d(4, 4, 3, bias=True).eval()
    with pytest.raises(NotImplementedError, match='bias in eval mode'):
        check_spconv_supported(conv, feats)
    check_spconv_supported(conv.train(), feats)  # training adds the bias in PyTorch: fine
