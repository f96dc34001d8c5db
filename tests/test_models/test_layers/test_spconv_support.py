"""mmspike's CPU conv kernels for spconv against spconv's own native kernel (one thread, where it
is correct): submanifold, strided and inverse 3D convs, forward and backward."""
import pytest
import torch

spconv = pytest.importorskip('spconv.pytorch')

from mmspike.models.layers.spconv_support import ensure_spconv_cpu_support  # noqa: E402


@pytest.mark.parametrize('kind', ['subm', 'strided', 'inverse'])
def test_cpu_kernels_match_spconv_native_single_thread(kind):
    from spconv.core import ConvAlgo
    from spconv.pytorch import ops
    ensure_spconv_cpu_support()
    g = torch.Generator().manual_seed(0)
    occ = torch.rand(2, 8, 8, 8, generator=g) < 0.3
    idx = occ.nonzero().int().contiguous()
    subm = kind == 'subm'
    k, s, p = (3, 1, 1) if subm else (2, 2, 0)
    out_idx, pairs, counts = ops.get_indice_pairs(idx, 2, [8, 8, 8], ConvAlgo.Native, [k] * 3,
                                                  [s] * 3, [p] * 3, [1] * 3, [0] * 3, subm, False)
    inverse = kind == 'inverse'
    n_in, n_out = (out_idx.shape[0], idx.shape[0]) if inverse else (idx.shape[0],
                                                                     out_idx.shape[0])
    feats = torch.randn(n_in, 6, generator=g)
    filters = torch.randn(5, k, k, k, 6, generator=g)  # spconv KRSC [O, k, k, k, I]
    grad = torch.randn(n_out, 5, generator=g)
    args = (pairs, counts, n_out, inverse, subm)
    mine = ops.indice_conv(feats, filters, *args, algo=ConvAlgo.Native)
    mine_bp = ops.indice_conv_backward(feats, filters, grad, pairs, counts, inverse, subm,
                                       algo=ConvAlgo.Native)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # spconv's own kernel is only right on one thread (issue 679)
    try:
        ref = ops.indice_conv.__wrapped__(feats, filters, *args, algo=ConvAlgo.Native)
        ref_bp = ops.indice_conv_backward.__wrapped__(feats, filters, grad, pairs, counts,
                                                      inverse, subm, algo=ConvAlgo.Native)
    finally:
        torch.set_num_threads(threads)
    assert mine.shape == (n_out, 5) and bool(mine.abs().sum() > 0)
    torch.testing.assert_close(mine, ref, rtol=1e-5, atol=1e-5)
    for a, b in zip(mine_bp, ref_bp):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
