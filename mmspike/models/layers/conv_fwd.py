"""The forward of a CPU 1x1 convolution of spikes in ATen's own summation order, skipping zeros.

A spiking layer's input is mostly zeros, and in E-SpikeFormer the zeros of neighbouring pixels
sit in almost the same channels: with the 19M benchmark's weights, 21-91% of the input channels
of a 1x1 conv are silent at a pixel (56% of the multiply-adds have a zero input), and listing per
group of 6 pixels the channels non-zero in any of them still skips 49% of the multiply-adds.
oneDNN multiplies every zero. For ``y = conv2d(x, W, b)`` with a 1x1 kernel,

.. math::

    y_{n,o,h,w} = \\Big(\\sum_{i} x_{n,i,h,w}\\, W_{o,i}\\Big) + b_o

oneDNN's float32 AVX2 kernel behind ATen (``brgconv_1x1``, channels-last) sums, at 2 threads,
ONE fused multiply-add chain per output over the input channels in ascending order from +0 and
adds the bias after it (found by comparing candidate orders bit for bit; at 1 thread it splits
wide inputs into blocks of channels, which the self-check below finds). Such a chain never holds
-0 unless a partial sum underflows (a sum that cancels rounds to +0), so a product with a zero
input (+-0) leaves it unchanged: skipping the zeros gives the same bits, with finite weights
(ATen's ``0 * inf`` is NaN). :func:`conv2d` does that: per group of 6 output pixels the list of
input channels non-zero in any of them, then per register tile those 6 pixels x 16 output
channels over the listed channels only (the group's zeros inside the list are multiplied, as
oneDNN does), on weights repacked per call as ``[O / 16][I][16]``. On the 19M benchmark's 72
1x1 convs it takes 0.6-0.7x ATen's time (``benchmarks/bench_vs_upstream.py``, closing notes).

**Self-check.** The order is an observation about one oneDNN build, thread count and ISA, not a
contract. The first call for a geometry (shapes, strides, bias or not, thread count) runs the
kernel and ``F.conv2d`` on random normal inputs with zeros at random places and in whole
channels and compares the bits; a geometry that differs goes to ``F.conv2d`` from then on
(:func:`checked_geometries`). Inputs where a sample of the tiles lists more than
:data:`MAX_LISTED` of the channels go to ``F.conv2d`` too (no faster there; the same bits). A
failed build (no C compiler) warns once and leaves every conv to ATen.

Used by the fast path's fused spike convs (:mod:`.fused`) for channels-last float32 1x1 convs
when the neurons' kernel backend is the C one (``MMSPIKE_KERNELS_DISABLE=c`` turns it off too).
"""
import ctypes
import logging
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from torch import Tensor
from torch.nn.modules.utils import _pair

from ..neurons import kernels

_SOURCE = r'''
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#define R 6        /* output pixels per register tile */
#define CG 16      /* groups of R pixels whose lists are built together */
/* One group of nq <= R pixels x 8 * NV (1 or 2) output channels: each output's FMA chain over
   the group's listed input channels (ascending), from +0; the bias after it. */
#define TILE(NV)                                                                                \
__attribute__((target("avx2,fma"))) static void tile_##NV(                                     \
    const int32_t *idx, const float *xs, int64_t n, const float *wp, const float *b,           \
    float *y, int64_t O, int64_t nq) {                                                          \
  __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00,     \
         a30 = a00, a31 = a00, a40 = a00, a41 = a00, a50 = a00, a51 = a00;                      \
  for (int64_t j = 0; j < n; ++j) {                                                             \
    const float *w = wp + (int64_t)idx[j] * (8 * NV), *v = xs + j * R;                          \
    __m256 w0 = _mm256_loadu_ps(w), w1 = NV > 1 ? _mm256_loadu_ps(w + 8) : w0, t;               \
    t = _mm256_broadcast_ss(v + 0); a00 = _mm256_fmadd_ps(t, w0, a00);                          \
    if (NV > 1) a01 = _mm256_fmadd_ps(t, w1, a01);                                              \
    t = _mm256_broadcast_ss(v + 1); a10 = _mm256_fmadd_ps(t, w0, a10);                          \
    if (NV > 1) a11 = _mm256_fmadd_ps(t, w1, a11);                                              \
    t = _mm256_broadcast_ss(v + 2); a20 = _mm256_fmadd_ps(t, w0, a20);                          \
    if (NV > 1) a21 = _mm256_fmadd_ps(t, w1, a21);                                              \
    t = _mm256_broadcast_ss(v + 3); a30 = _mm256_fmadd_ps(t, w0, a30);                          \
    if (NV > 1) a31 = _mm256_fmadd_ps(t, w1, a31);                                              \
    t = _mm256_broadcast_ss(v + 4); a40 = _mm256_fmadd_ps(t, w0, a40);                          \
    if (NV > 1) a41 = _mm256_fmadd_ps(t, w1, a41);                                              \
    t = _mm256_broadcast_ss(v + 5); a50 = _mm256_fmadd_ps(t, w0, a50);                          \
    if (NV > 1) a51 = _mm256_fmadd_ps(t, w1, a51);                                              \
  }                                                                                             \
  __m256 acc[R][2] = {{a00, a01}, {a10, a11}, {a20, a21}, {a30, a31}, {a40, a41}, {a50, a51}};  \
  for (int64_t r = 0; r < nq; ++r)                                                              \
    for (int v = 0; v < NV; ++v) {                                                              \
      __m256 s = acc[r][v];                                                                     \
      if (b) s = _mm256_add_ps(s, _mm256_loadu_ps(b + 8 * v));                                  \
      _mm256_storeu_ps(y + r * O + 8 * v, s);                                                   \
    }                                                                                           \
}
TILE(1) TILE(2)

/* The non-zero mask of input channels k..k+7 over nq rows of x (row stride I); NaN is listed. */
__attribute__((target("avx2"))) static inline unsigned group_mask(const float *x, int64_t nq,
                                                                  int64_t I, int64_t k) {
  const __m256 z = _mm256_setzero_ps();
  unsigned m = 0;
  for (int64_t r = 0; r < nq; ++r)
    m |= (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + r * I + k), z,
                                                    _CMP_NEQ_UQ));
  return m;
}

/* The input channels where any of the nq <= R rows of x is non-zero: idx[c] ascending,
   xs[c * R + r] row r's value there (0 for r >= nq). I is a multiple of 8. Returns the count. */
__attribute__((target("avx2"))) static int64_t group_list(const float *x, int64_t nq, int64_t I,
                                                          int32_t *idx, float *xs) {
  int64_t c = 0;
  for (int64_t k = 0; k < I; k += 8)
    for (unsigned m = group_mask(x, nq, I, k); m; m &= m - 1, ++c) {
      int64_t i = k + __builtin_ctz(m);
      idx[c] = (int32_t)i;
      for (int64_t r = 0; r < R; ++r) xs[c * R + r] = r < nq ? x[r * I + i] : 0.0f;
    }
  return c;
}

/* y[P, O] = x[P, I] w[O, I]^T (+ b[O]) with each output one FMA chain over the input channels in
   ascending order from +0, skipping channels that are zero in all R pixels of a tile (bias
   after). Returns 0 (y written), 1 (the listed fraction of a sample of tiles exceeds
   max_listed: nothing written), 2 (a weight is not finite: nothing written), -1 (no AVX2 + FMA,
   I or O not a multiple of 8), -2 (out of memory). */
int conv1x1_f32(const float *x, const float *w, const float *b, float *y, int64_t P, int64_t I,
                int64_t O, double max_listed, int nthreads) {
  __builtin_cpu_init();
  if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) || O % 8 || I % 8)
    return -1;
  int64_t ng = (P + R - 1) / R, nob = (O + 15) / 16;
  /* every 8th tile's list length (the kernel's work) against I: denser inputs go to ATen */
  int64_t listed = 0, sampled = 0;
  for (int64_t g = 0; g < ng; g += 8, sampled += I) {
    int64_t nq = P - g * R < R ? P - g * R : R;
    for (int64_t k = 0; k < I; k += 8)
      listed += __builtin_popcount(group_mask(x + g * R * I, nq, I, k));
  }
  if (listed > max_listed * sampled) return 1;
  float *wp = (float *)malloc(sizeof(float) * O * I);  /* [O / 16][I][16] (last block 8 wide) */
  if (!wp) return -2;
  int finite = 1;
  #pragma omp parallel for num_threads(nthreads) schedule(static) reduction(&& : finite)
  for (int64_t ob = 0; ob < nob; ++ob) {
    int64_t o0 = ob * 16, ow = O - o0 < 16 ? O - o0 : 16;
    float *dst = wp + o0 * I;
    for (int64_t o = 0; o < ow; ++o) {
      const float *src = w + (o0 + o) * I;
      for (int64_t i = 0; i < I; ++i) {
        finite = finite && isfinite(src[i]);
        dst[i * ow + o] = src[i];
      }
    }
  }
  if (!finite) { free(wp); return 2; }  /* ATen's 0 * inf is NaN: skipping would lose it */
  int64_t nch = (ng + CG - 1) / CG;
  int err = 0;
  #pragma omp parallel num_threads(nthreads)
  {
    int32_t *idx = (int32_t *)malloc(sizeof(int32_t) * CG * I);
    float *xs = (float *)malloc(sizeof(float) * CG * I * R);
    if (!idx || !xs) {
      #pragma omp atomic write
      err = -2;
    }
    #pragma omp barrier
    if (!err) {
      int64_t start[CG + 1];
      #pragma omp for schedule(static)
      for (int64_t ch = 0; ch < nch; ++ch) {
        int64_t g0 = ch * CG, g1 = g0 + CG < ng ? g0 + CG : ng;
        start[0] = 0;
        for (int64_t g = g0; g < g1; ++g) {
          int64_t nq = P - g * R < R ? P - g * R : R, s = start[g - g0];
          start[g - g0 + 1] = s + group_list(x + g * R * I, nq, I, idx + s, xs + s * R);
        }
        for (int64_t ob = 0; ob < nob; ++ob) {
          int64_t o0 = ob * 16;
          for (int64_t g = g0; g < g1; ++g) {
            int64_t nq = P - g * R < R ? P - g * R : R, s = start[g - g0];
            (O - o0 >= 16 ? tile_2 : tile_1)(idx + s, xs + s * R, start[g - g0 + 1] - s,
                                             wp + o0 * I, b ? b + o0 : NULL, y + g * R * O + o0,
                                             O, nq);
          }
        }
      }
    }
    free(idx); free(xs);
  }
  free(wp);
  return err;
}
'''

_vp, _i64 = ctypes.c_void_p, ctypes.c_int64
_LIB = kernels.LazyCLibrary(
    _SOURCE, 'conv1x1_fwd',
    {'conv1x1_f32': ([_vp] * 4 + [_i64] * 3 + [ctypes.c_double, ctypes.c_int], ctypes.c_int)},
    'ATen computes the 1x1 convs')
#: geometry -> whether the kernel's bits equal ATen's there (checked on its first call)
_checked: Dict[tuple, bool] = {}
#: inputs whose sampled tiles list more than this fraction of the channels go to ATen
MAX_LISTED = 0.9


def _channels_last(t: Tensor) -> bool:
    return t.dim() == 4 and t.permute(0, 2, 3, 1).is_contiguous()


def applies(x: Tensor, weight: Tensor, bias: Optional[Tensor],
            stride: Union[int, Sequence[int]], padding: Union[int, Sequence[int], str],
            dilation: Union[int, Sequence[int]], groups: int) -> bool:
    """Whether :func:`conv2d` can run its kernel for this conv (it may still defer to ATen)."""
    if isinstance(padding, str):  # 'same' / 'valid': F.conv2d's own business
        return False
    stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
    return (x.device.type == 'cpu' and x.dtype == weight.dtype == torch.float32
            and weight.device.type == 'cpu' and weight.dim() == 4
            and (bias is None or (bias.dtype == torch.float32 and bias.device.type == 'cpu'))
            and groups == 1 and tuple(weight.shape[2:]) == (1, 1)
            and tuple(stride) == (1, 1) and tuple(padding) == (0, 0)
            and tuple(dilation) == (1, 1) and weight.shape[0] % 8 == 0
            and weight.shape[1] % 8 == 0 and _channels_last(x) and x.numel() > 0
            and not torch.is_autocast_enabled('cpu'))


def _kernel(lib: ctypes.CDLL, x: Tensor, weight: Tensor, bias: Optional[Tensor],
            max_listed: float) -> Optional[Tensor]:
    """The kernel's output, or None where it wrote nothing (too dense, a non-finite weight, no
    AVX2 + FMA, out of memory)."""
    N, I, H, W = x.shape
    O = weight.shape[0]
    w = weight.reshape(O, I).contiguous()
    b = None if bias is None else bias.contiguous()
    y = torch.empty(N, O, H, W, memory_format=torch.channels_last)
    if lib.conv1x1_f32(x.data_ptr(), w.data_ptr(), None if b is None else b.data_ptr(),
                       y.data_ptr(), N * H * W, I, O, max_listed,
                       torch.get_num_threads()) != 0:
        return None
    return y


def _self_check(lib: ctypes.CDLL, x: Tensor, weight: Tensor, bias: Optional[Tensor]) -> bool:
    """Whether the kernel gives ``F.conv2d``'s bits on random normal tensors of this geometry
    and these strides, with zeros at random places (half) and in whole channels (a quarter)."""
    gen = torch.Generator().manual_seed(0)
    xr = torch.empty_strided(x.shape, x.stride()).normal_(generator=gen)
    xr.masked_fill_(torch.rand(x.shape, generator=gen) < 0.5, 0.0)
    xr.masked_fill_(torch.rand(1, x.shape[1], 1, 1, generator=gen) < 0.25, 0.0)
    wr = torch.empty_strided(weight.shape, weight.stride()).normal_(generator=gen)
    br = None if bias is None else torch.randn(bias.shape, generator=gen)
    out = _kernel(lib, xr, wr, br, 1.0)
    return out is not None and torch.equal(out, F.conv2d(xr, wr, br))


def conv2d(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None,
           stride: Union[int, Sequence[int]] = 1, padding: Union[int, Sequence[int], str] = 0,
           dilation: Union[int, Sequence[int]] = 1, groups: int = 1) -> Tensor:
    """``F.conv2d(x, weight, bias, stride, padding, dilation, groups)``, bit for bit, skipping
    the zeros of ``x`` where the kernel runs.

    The kernel runs where :func:`applies` holds (CPU, float32, channels-last ``x``, a 1x1 kernel
    with stride 1 and no padding, groups 1, input and output channels multiples of 8, no
    autocast), the weight is finite, a sample of the tiles lists at most :data:`MAX_LISTED` of
    the input channels, and the build and the self-check (module docstring) passed;
    ``F.conv2d`` computes it everywhere else.

    Args:
        x (Tensor): ``[N, I, H, W]`` input (spikes).
        weight (Tensor): ``[O, I / groups, KH, KW]`` weight.
        bias (Tensor, optional): ``[O]`` bias. Defaults to None.
        stride, padding, dilation (int | Sequence[int]): The conv's geometry, as
            ``F.conv2d`` takes it. Default to 1, 0, 1.
        groups (int): The conv's groups. Defaults to 1.

    Returns:
        Tensor: ``[N, O, OH, OW]``, channels-last where the kernel ran (as ``F.conv2d`` returns
        it for a channels-last input).
    """
    if not applies(x, weight, bias, stride, padding, dilation, groups):
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)
    # ATen's order depends on the thread count (and on the input's width at 1 thread)
    key = (tuple(x.shape), x.stride(), tuple(weight.shape), weight.stride(), bias is None,
           torch.get_num_threads())
    ok = _checked.get(key)
    lib = _LIB.get() if ok is not False else None
    if lib is not None and ok is None:
        ok = _checked[key] = _self_check(lib, x, weight, bias)
        if not ok:  # ATen sums in another order there
            print_log(f'mmspike: the 1x1 spike-conv kernel does not reproduce ATen\'s bits for '
                      f'input {tuple(x.shape)}, weight {tuple(weight.shape)}, '
                      f'{torch.get_num_threads()} threads: ATen computes that conv',
                      logger='current', level=logging.DEBUG)
    out = _kernel(lib, x, weight, bias, MAX_LISTED) if ok else None
    return F.conv2d(x, weight, bias) if out is None else out


def checked_geometries() -> Dict[Tuple, bool]:
    """The geometries checked so far and whether the kernel reproduced ATen's bits there."""
    return dict(_checked)
