"""Weight and bias gradients of a CPU convolution in ATen's own summation order, 2-4x faster.

For ``y = conv2d(x, W) + b`` (groups 1 or depthwise, no dilation, stride ``s``, zero padding
``p``) the weight gradient is

.. math::

    \\frac{\\partial L}{\\partial W_{o,i,k_h,k_w}} = \\sum_{n, o_h, o_w} g_{n,o,o_h,o_w}\\,
        x_{n,\\,i,\\,o_h s + k_h - p,\\,o_w s + k_w - p}

oneDNN's float32 AVX2 kernel behind ``aten.convolution_backward`` sums it, for kernels larger
than 1x1, as ONE fused multiply-add chain per weight over the output pixels in ``(n, o_h, o_w)``
order, starting from +0 (found by comparing candidate orders bit for bit; 1 and 2 threads give
the same bits); so does its channels-last depthwise kernel (``i = o``). The bias gradient
:math:`\\sum_{n, o_h, o_w} g_{n,o,o_h,o_w}` comes out of the same kernel (asked for alone, it
costs as much as both), as one addition chain per channel, or one per thread's share of the
images added in order (:func:`conv2d_param_grads`). On channels-last tensors these kernels
reach a quarter of the CPU's FMA peak or less, so in E-SpikeFormer's training step the backward
of the 3x3 convolutions takes four times their forward, that of the 7x7 depthwise ones six
times. :func:`conv2d_param_grads` runs the same chains, faster: per register tile 16 output x 6
input channels of one tap over pixel rows packed contiguously (depthwise: up to 96 channels of
one tap, on the tensors' own rows), each weight's chain in one thread (so the bits do not depend
on the thread count).

**Self-check.** The order is an observation about one oneDNN build on one ISA, not a contract,
and for some depthwise convs it depends on the thread count and the tensors' strides (ATen
then picks another kernel or splits the sum). So the first call for a geometry (shapes,
strides, stride, padding, groups, thread count) runs the kernel and ATen's weight gradient on
random normal tensors of it (any other summation order shows on them) and compares the bits;
a geometry that differs uses ATen from then on (a debug-level log line says which;
:func:`checked_geometries` and :func:`checked_bias_orders` list them all). On a CPU with
AVX-512 (ATen's capability ``AVX512``) oneDNN runs its AVX-512 kernels, which sum the dense
convs in other orders: there the check hands them to ATen (seen on an Intel Xeon). A failed
build (no C compiler) warns once and leaves every gradient to ATen.

**1x1 convs stay with ATen.** oneDNN's ``jit_1x1`` AVX2 kernel (2 threads, channels-last) sums
their weight gradient in another order: per image, chunks of ``min(OW, 128)`` pixels (the last
chunk of an image takes the rest when it is under 1.5 chunks), each chunk's FMA chain from +0
added to the running total; where oneDNN splits the pixels between the threads (it does for the
28² - 112² convs of E-SpikeFormer-19M), each thread's share of the flattened pixels is summed
so and the shares added in order (every geometry of the 19M model reproduced bit for bit). A
kernel in that order skipping the zero spikes ran at 0.8-1.1x ATen's speed at a training step's
spike densities (29-45% non-zero): with 14-pixel chunks (14² maps) each chunk's short chain and
its unpredictable length cost as much as the skipped products save.

Used by the fast path's fused spike convs (:mod:`.fused`) for channels-last float32 tensors when
the neurons' kernel backend is the C one (``MMSPIKE_KERNELS_DISABLE=c`` turns it off too).
"""
import ctypes
import logging
from typing import Dict, Optional, Sequence, Tuple

import torch
from mmengine.logging import print_log
from torch import Tensor

from ..neurons import kernels

_SOURCE = r'''
#include <immintrin.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Register tiles over output pixels p0..p1 (flat (n, oh, ow) index) for tap (kh, kw), adding to
   acc[kh][kw][.]: xp / gp walk the input / output-gradient rows of the tile's channels. */
#define PIXELS(...)                                                                             \
  /* the output columns whose tap is inside the input: 0 <= ow * sw + kw - pw < W */           \
  int64_t lo = pw - kw > 0 ? (pw - kw + sw - 1) / sw : 0;                                       \
  int64_t hi = W - 1 + pw - kw >= 0 ? (W - 1 + pw - kw) / sw + 1 : 0;                           \
  if (hi > OW) hi = OW;                                                                         \
  int64_t row = p0 / OW, ow0 = p0 - row * OW;                                                   \
  for (int64_t p = p0; p < p1; ++row, ow0 = 0) {                                                \
    int64_t ow1 = OW - ow0 < p1 - p ? OW : ow0 + (p1 - p);                                      \
    int64_t n = row / OH, oh = row - n * OH, ih = oh * sh + kh - ph;                            \
    int64_t b = ow0 > lo ? ow0 : lo, e = ow1 < hi ? ow1 : hi;                                   \
    if (ih >= 0 && ih < H && b < e) {                                                           \
      const float *xp = x + ((n * H + ih) * W + b * sw + kw - pw) * I + i0;                     \
      const float *gp = g + (row * OW + b) * O + o0;                                            \
      for (int64_t ow = b; ow < e; ++ow, xp += sw * I, gp += O) { __VA_ARGS__ }                   \
    }                                                                                           \
    p += ow1 - ow0;                                                                             \
  }
#define TILE_ARGS                                                                               \
    const float *x, const float *g, float *acc, int64_t p0, int64_t p1, int64_t OH, int64_t OW, \
    int64_t H, int64_t W, int64_t I, int64_t O, int64_t kh, int64_t kw, int64_t sh, int64_t sw, \
    int64_t ph, int64_t pw, int64_t i0, int64_t o0
/* The accumulators are named locals: GCC keeps an array of them on the stack. */
#define ACCS(z) a0_0 = z, a0_1 = z, a1_0 = z, a1_1 = z, a2_0 = z, a2_1 = z, a3_0 = z, a3_1 = z,    \
    a4_0 = z, a4_1 = z, a5_0 = z, a5_1 = z

/* Dense conv: 8 * OB output channels x RI input channels over P packed pixels (x: 6 floats a
   pixel, g: 16), adding to ap[i * O + o]. */
#define LOAD_ROW(r, OB, RI) if ((r) < (RI)) { a##r##_0 = _mm256_loadu_ps(ap + (r) * O);        \
    if ((OB) > 1) a##r##_1 = _mm256_loadu_ps(ap + (r) * O + 8); }
#define STORE_ROW(r, OB, RI) if ((r) < (RI)) { _mm256_storeu_ps(ap + (r) * O, a##r##_0);       \
    if ((OB) > 1) _mm256_storeu_ps(ap + (r) * O + 8, a##r##_1); }
#define FMA_ROW(r, OB, RI) if ((r) < (RI)) { __m256 xv = _mm256_broadcast_ss(xp + (r));         \
    a##r##_0 = _mm256_fmadd_ps(g0, xv, a##r##_0);                                               \
    if ((OB) > 1) a##r##_1 = _mm256_fmadd_ps(g1, xv, a##r##_1); }
#define ROWS(M, OB, RI) M(0, OB, RI) M(1, OB, RI) M(2, OB, RI) M(3, OB, RI) M(4, OB, RI)        \
    M(5, OB, RI)
#define TILE(OB, RI)                                                                            \
__attribute__((target("avx2,fma"))) static void tile_##OB##_##RI(                              \
    const float *xp, const float *gp, float *ap, int64_t P, int64_t O) {                        \
  __m256 z = _mm256_setzero_ps(), ACCS(z);                                                      \
  ROWS(LOAD_ROW, OB, RI)                                                                        \
  for (int64_t p = 0; p < P; ++p, xp += 6, gp += 16) {                                          \
    __m256 g0 = _mm256_loadu_ps(gp), g1 = (OB) > 1 ? _mm256_loadu_ps(gp + 8) : g0;              \
    ROWS(FMA_ROW, OB, RI)                                                                       \
  }                                                                                             \
  ROWS(STORE_ROW, OB, RI)                                                                       \
}

/* Depthwise conv (I = O = C, i0 = o0): 8 * NV channels; acc[.][.][c]. */
#define DLOAD(r, j, NV) if ((r) * 2 + (j) < (NV)) a##r##_##j = _mm256_loadu_ps(ap + 16 * (r) + 8 * (j));
#define DSTORE(r, j, NV) if ((r) * 2 + (j) < (NV)) _mm256_storeu_ps(ap + 16 * (r) + 8 * (j), a##r##_##j);
#define DFMA(r, j, NV) if ((r) * 2 + (j) < (NV)) a##r##_##j = _mm256_fmadd_ps(                   \
    _mm256_loadu_ps(gp + 16 * (r) + 8 * (j)), _mm256_loadu_ps(xp + 16 * (r) + 8 * (j)), a##r##_##j);
#define DROWS(M, NV) M(0, 0, NV) M(0, 1, NV) M(1, 0, NV) M(1, 1, NV) M(2, 0, NV) M(2, 1, NV)      \
    M(3, 0, NV) M(3, 1, NV) M(4, 0, NV) M(4, 1, NV) M(5, 0, NV) M(5, 1, NV)
#define DW_TILE(NV)                                                                             \
__attribute__((target("avx2,fma"))) static void dw_tile_##NV(TILE_ARGS) {                      \
  float *ap = acc + o0;                                                                         \
  __m256 z = _mm256_setzero_ps(), ACCS(z);                                                      \
  DROWS(DLOAD, NV)                                                                              \
  PIXELS(DROWS(DFMA, NV))                                                                       \
  DROWS(DSTORE, NV)                                                                             \
}
TILE(2, 6) TILE(2, 5) TILE(2, 4) TILE(2, 3) TILE(2, 2) TILE(2, 1)
TILE(1, 6) TILE(1, 5) TILE(1, 4) TILE(1, 3) TILE(1, 2) TILE(1, 1)
DW_TILE(1) DW_TILE(2) DW_TILE(3) DW_TILE(4) DW_TILE(5) DW_TILE(6) DW_TILE(7) DW_TILE(8)
DW_TILE(9) DW_TILE(10) DW_TILE(11) DW_TILE(12)

/* Adds to out[0 .. 8 * nv) the chain over rows g[0 .. P) (row stride O) from +0. */
__attribute__((target("avx2"))) static void bias_chain(const float *g, float *out, int64_t P,
                                                      int64_t O, int64_t nv) {
  __m256 z = _mm256_setzero_ps(), a0 = z, a1 = z, a2 = z, a3 = z;
  for (int64_t p = 0; p < P; ++p, g += O) {
    a0 = _mm256_add_ps(a0, _mm256_loadu_ps(g));
    if (nv > 1) a1 = _mm256_add_ps(a1, _mm256_loadu_ps(g + 8));
    if (nv > 2) a2 = _mm256_add_ps(a2, _mm256_loadu_ps(g + 16));
    if (nv > 3) a3 = _mm256_add_ps(a3, _mm256_loadu_ps(g + 24));
  }
  _mm256_storeu_ps(out, _mm256_add_ps(_mm256_loadu_ps(out), a0));
  if (nv > 1) _mm256_storeu_ps(out + 8, _mm256_add_ps(_mm256_loadu_ps(out + 8), a1));
  if (nv > 2) _mm256_storeu_ps(out + 16, _mm256_add_ps(_mm256_loadu_ps(out + 16), a2));
  if (nv > 3) _mm256_storeu_ps(out + 24, _mm256_add_ps(_mm256_loadu_ps(out + 24), a3));
}

typedef void (*tile_fn)(const float *, const float *, float *, int64_t, int64_t);
static const tile_fn TILES[2][6] = {
  {tile_1_1, tile_1_2, tile_1_3, tile_1_4, tile_1_5, tile_1_6},
  {tile_2_1, tile_2_2, tile_2_3, tile_2_4, tile_2_5, tile_2_6}};

typedef void (*dw_tile_fn)(const float *, const float *, float *, int64_t, int64_t, int64_t,
                           int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                           int64_t, int64_t, int64_t, int64_t, int64_t);
static const dw_tile_fn DW_TILES[12] = {dw_tile_1, dw_tile_2, dw_tile_3, dw_tile_4, dw_tile_5,
  dw_tile_6, dw_tile_7, dw_tile_8, dw_tile_9, dw_tile_10, dw_tile_11, dw_tile_12};

/* Dense conv. Each thread owns a share of the input- or output-channel blocks (whichever are
   more), so every weight's chain runs in one thread, and packs the data of its tiles itself
   (no barriers): per block of pixels, g as [output block][pixel][16] and, per tap, the tap's
   inputs as [input block][pixel][6], zeros where the tap falls into the padding (a product
   +-0 leaves a finite chain's value unchanged: it never holds -0). Contiguous rows keep the
   tiles at the FMA peak; on the tensors' own rows (strides I and O) they reach half of it. */
__attribute__((target("avx2,fma"))) static int dense_wgrad(
    const float *x, const float *g, float *acc, int64_t N, int64_t H, int64_t W, int64_t I,
    int64_t OH, int64_t OW, int64_t O, int64_t KH, int64_t KW, int64_t sh, int64_t sw,
    int64_t ph, int64_t pw, int nthreads) {
  int64_t obs = (O + 15) / 16, ibs = (I + 5) / 6, npix = N * OH * OW;
  int split_i = ibs >= obs;
  int64_t nsplit = split_i ? ibs : obs;
  if (nthreads > nsplit) nthreads = (int)nsplit;
  int failed = 0;
  #pragma omp parallel num_threads(nthreads)
  {
    int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    int64_t lo = nsplit * t / nt, hi = nsplit * (t + 1) / nt;
    int64_t ib0 = split_i ? lo : 0, ib1 = split_i ? hi : ibs;
    int64_t ob0 = split_i ? 0 : lo, ob1 = split_i ? obs : hi;
    int64_t ni = ib1 - ib0, no = ob1 - ob0;
    /* a block's packed rows (~192 KB) stay in the core's L2 (96-384 KB: the same speed) */
    int64_t pb = 49152 / (ni * 6 + no * 16);
    pb = pb < 16 ? 16 : (pb > 1024 ? 1024 : pb);
    float *xpk = malloc(sizeof(float) * pb * 6 * ni), *gpk = malloc(sizeof(float) * pb * 16 * no);
    if (!xpk || !gpk) {
      #pragma omp atomic write
      failed = 1;
    } else if (ni > 0 && no > 0) {
      for (int64_t p0 = 0; p0 < npix; p0 += pb) {
        int64_t np = npix - p0 < pb ? npix - p0 : pb;
        for (int64_t q = 0; q < np; ++q) {
          const float *gr = g + (p0 + q) * O;
          for (int64_t ob = ob0; ob < ob1; ++ob) {
            float *d = gpk + ((ob - ob0) * pb + q) * 16;
            _mm256_storeu_ps(d, _mm256_loadu_ps(gr + ob * 16));
            _mm256_storeu_ps(d + 8, O - ob * 16 >= 16 ? _mm256_loadu_ps(gr + ob * 16 + 8)
                                                      : _mm256_setzero_ps());
          }
        }
        for (int64_t kh = 0; kh < KH; ++kh)
          for (int64_t kw = 0; kw < KW; ++kw) {
            int64_t n = p0 / (OH * OW), oh = p0 / OW % OH, ow = p0 % OW;
            for (int64_t q = 0; q < np; ++q, ow = ow + 1 < OW ? ow + 1 : 0) {
              if (q > 0 && ow == 0 && ++oh == OH) oh = 0, ++n;
              int64_t ih = oh * sh + kh - ph, iw = ow * sw + kw - pw;
              const float *xr = ih >= 0 && ih < H && iw >= 0 && iw < W
                                    ? x + ((n * H + ih) * W + iw) * I : NULL;
              for (int64_t ib = ib0; ib < ib1; ++ib) {
                float *d = xpk + ((ib - ib0) * pb + q) * 6;
                int64_t c0 = ib * 6;
                if (xr && I - c0 >= 6) {
                  _mm_storeu_ps(d, _mm_loadu_ps(xr + c0));
                  memcpy(d + 4, xr + c0 + 4, 8);
                } else {
                  memset(d, 0, 24);
                  if (xr) memcpy(d, xr + c0, sizeof(float) * (I - c0));
                }
              }
            }
            float *tacc = acc + (kh * KW + kw) * I * O;
            for (int64_t ob = ob0; ob < ob1; ++ob)
              for (int64_t ib = ib0; ib < ib1; ++ib) {
                int ri = I - ib * 6 < 6 ? (int)(I - ib * 6) : 6, obn = O - ob * 16 >= 16 ? 2 : 1;
                TILES[obn - 1][ri - 1](xpk + (ib - ib0) * pb * 6, gpk + (ob - ob0) * pb * 16,
                                       tacc + ib * 6 * O + ob * 16, np, O);
              }
          }
      }
    }
    free(xpk);
    free(gpk);
  }
  return failed ? -2 : 0;
}

/* x: [N, H, W, I], g: [N, OH, OW, O] (both channels-last), acc: [KH, KW, I, O], or [KH, KW, C]
   for a depthwise conv (I = O = C) (written). Returns -1 (nothing written) without AVX2 + FMA
   or when O is not a multiple of 8, -2 when memory ran out. */
int conv_wgrad_f32(const float *x, const float *g, float *acc, int64_t N, int64_t H, int64_t W,
                   int64_t I, int64_t OH, int64_t OW, int64_t O, int64_t KH, int64_t KW,
                   int64_t sh, int64_t sw, int64_t ph, int64_t pw, int depthwise, int nthreads) {
  __builtin_cpu_init();
  if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) || O % 8) return -1;
  int64_t tap_size = depthwise ? O : I * O;
  memset(acc, 0, sizeof(float) * KH * KW * tap_size);
  if (!depthwise)
    return dense_wgrad(x, g, acc, N, H, W, I, OH, OW, O, KH, KW, sh, sw, ph, pw, nthreads);
  /* depthwise tiles: channel blocks outer (consecutive tiles share g's columns, which stay in
     L1), then taps */
  int64_t obs = (O + 95) / 96, ntiles = obs * KH * KW, npix = N * OH * OW;
  /* a block's g and x rows stay in L2 while every tile of it runs */
  int64_t pb = 32768 / O < 64 ? 64 : (32768 / O > 256 ? 256 : 32768 / O);
  #pragma omp parallel num_threads(nthreads)
  for (int64_t p0 = 0; p0 < npix; p0 += pb) {
    int64_t p1 = p0 + pb < npix ? p0 + pb : npix;
    /* static: a tile gets the same thread in every block, so its chain stays in order */
    #pragma omp for schedule(static) nowait
    for (int64_t t = 0; t < ntiles; ++t) {
      int64_t ob = t / (KH * KW), tap = t % (KH * KW), kh = tap / KW, kw = tap % KW;
      int64_t c0 = ob * 96, nv = (O - c0 < 96 ? O - c0 : 96) / 8;
      DW_TILES[nv - 1](x, g, acc + tap * tap_size, p0, p1, OH, OW, H, W, I, O, kh, kw, sh, sw,
                       ph, pw, c0, c0);
    }
  }
  return 0;
}

/* g: [N, PI, O] (channels-last output gradient, PI = OH * OW pixels per image), out: [O]
   (written): per channel, one addition chain over the pixels of each of `chunks` consecutive
   groups of images (the first N % chunks groups one image larger), the groups' sums added in
   order to +0 (chunks = 1: one chain over all pixels). Returns -1 (nothing written) without
   AVX2 or when O is not a multiple of 8. */
int conv_bgrad_f32(const float *g, float *out, int64_t N, int64_t PI, int64_t O, int64_t chunks,
                   int nthreads) {
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx2") || O % 8 || chunks < 1) return -1;
  memset(out, 0, sizeof(float) * O);
  int64_t nb = (O / 8 + 3) / 4;  /* blocks of up to 32 channels */
  #pragma omp parallel for num_threads(nthreads) schedule(static)
  for (int64_t b = 0; b < nb; ++b) {
    int64_t nv = O - 32 * b < 32 ? (O - 32 * b) / 8 : 4;
    for (int64_t c = 0, n0 = 0; c < chunks && n0 < N; ++c) {
      int64_t n1 = n0 + N / chunks + (c < N % chunks);
      bias_chain(g + (n0 * PI * O) + 32 * b, out + 32 * b, (n1 - n0) * PI, O, nv);
      n0 = n1;
    }
  }
  return 0;
}
'''

_vp, _i64 = ctypes.c_void_p, ctypes.c_int64
_LIB = kernels.LazyCLibrary(
    _SOURCE, 'conv_wgrad',
    {'conv_wgrad_f32': ([_vp] * 3 + [_i64] * 13 + [ctypes.c_int] * 2, ctypes.c_int),
     'conv_bgrad_f32': ([_vp, _vp, _i64, _i64, _i64, _i64, ctypes.c_int], ctypes.c_int)},
    'ATen computes those gradients')
#: geometry -> (whether the kernel's weight-gradient bits equal ATen's there, the image groups
#: of the bias gradient or None), checked on its first call
_checked: Dict[tuple, Tuple[bool, Optional[int]]] = {}


def _channels_last(t: Tensor) -> bool:
    return t.dim() == 4 and t.permute(0, 2, 3, 1).is_contiguous()


def applies(x: Tensor, grad: Tensor, weight: Tensor, stride: Sequence[int],
            padding: Sequence[int], dilation: Sequence[int], groups: int) -> bool:
    """Whether :func:`conv2d_param_grads` can take this conv (it may still defer to ATen)."""
    O, Ig, KH, KW = weight.shape
    depthwise = groups > 1 and groups == O == x.shape[1] and Ig == 1
    return (x.device.type == 'cpu' and x.dtype == grad.dtype == weight.dtype == torch.float32
            and (groups == 1 or depthwise) and tuple(dilation) == (1, 1) and KH * KW > 1
            and padding[0] < KH and padding[1] < KW  # every output pixel sees the input
            and O % 8 == 0 and _channels_last(x) and _channels_last(grad) and x.numel() > 0
            and grad.numel() > 0)


def _aten(grad: Tensor, x: Tensor, weight: Tensor, stride, padding, groups, dilation=(1, 1),
          bias: bool = False, weight_grad: bool = True
          ) -> Tuple[Optional[Tensor], Optional[Tensor]]:
    _, gw, gb = torch.ops.aten.convolution_backward(
        grad, x, weight, [weight.shape[0]] if bias else None, list(stride), list(padding),
        list(dilation), False, [0, 0], groups, [False, weight_grad, bias])
    return gw, gb


def _kernel(lib: ctypes.CDLL, grad: Tensor, x: Tensor, weight: Tensor, stride, padding,
            groups: int) -> Optional[Tensor]:
    """The kernel's weight gradient, or None where it does not run (no AVX2 + FMA)."""
    N, I, H, W = x.shape
    O, Ig, KH, KW = weight.shape
    OH, OW = grad.shape[2:]
    acc = torch.empty(KH, KW, Ig, O)
    if lib.conv_wgrad_f32(x.data_ptr(), grad.data_ptr(), acc.data_ptr(), N, H, W, I, OH, OW, O,
                          KH, KW, stride[0], stride[1], padding[0], padding[1], int(groups > 1),
                          torch.get_num_threads()) != 0:
        return None
    out = acc.permute(3, 2, 0, 1)  # [O, I / groups, KH, KW] view of [KH, KW, I / groups, O]
    layout = (torch.channels_last if weight.permute(0, 2, 3, 1).is_contiguous()
              and not weight.is_contiguous() else torch.contiguous_format)
    return out.contiguous(memory_format=layout)


def _bias_kernel(lib: ctypes.CDLL, grad: Tensor, chunks: int) -> Optional[Tensor]:
    """The kernel's bias gradient summed in ``chunks`` groups of images, or None where it does
    not run (no AVX2)."""
    N, O, OH, OW = grad.shape
    out = torch.empty(O)
    if lib.conv_bgrad_f32(grad.data_ptr(), out.data_ptr(), N, OH * OW, O, chunks,
                          torch.get_num_threads()) != 0:
        return None
    return out


def _self_check(lib: ctypes.CDLL, grad: Tensor, x: Tensor, weight: Tensor, stride, padding,
                groups: int) -> Tuple[bool, Optional[int]]:
    """Whether the kernel gives ATen's weight gradient bits on random normal tensors of this
    geometry and these strides (any other summation order shows on them; spike inputs can hide
    one), and in how many groups of images the bias gradient is summed there (one chain, or
    one per thread; None: neither)."""
    gen = torch.Generator().manual_seed(0)
    rnd = [torch.empty_strided(t.shape, t.stride()).normal_(generator=gen)
           for t in (grad, x, weight)]
    gw, gb = _aten(*rnd, stride, padding, groups, bias=True)
    out = _kernel(lib, *rnd, stride, padding, groups)
    chunks = None
    for c in dict.fromkeys((1, min(torch.get_num_threads(), grad.shape[0]))):
        b = _bias_kernel(lib, rnd[0], c)
        if b is not None and torch.equal(b, gb):
            chunks = c
            break
    return out is not None and torch.equal(out, gw), chunks


def conv2d_param_grads(grad: Tensor, x: Tensor, weight: Tensor, stride: Sequence[int],
                       padding: Sequence[int], dilation: Sequence[int] = (1, 1),
                       groups: int = 1, bias: bool = False
                       ) -> Tuple[Tensor, Optional[Tensor]]:
    """The weight (and bias) gradient of ``conv2d(x, weight, bias, stride, padding, dilation,
    groups)`` for output gradient ``grad``, bit-identical to ATen's
    (``aten.convolution_backward``).

    The kernel runs where :func:`applies` holds (CPU, float32, channels-last ``x`` and ``grad``,
    groups 1 or depthwise, no dilation, a kernel larger than 1x1 and than the padding, output
    channels a multiple of 8) and the build and the self-check (module docstring) passed, and
    its result is kept when it is finite; ATen computes it everywhere else (non-finite inputs
    included: ATen's products with the padding's zeros turn an infinity into NaN there).

    ATen computes the bias gradient inside oneDNN's weight-gradient kernel (alone it costs as
    much as both): one addition chain per channel over the output pixels in ``(n, o_h, o_w)``
    order, or, where oneDNN splits the images between threads (few output channels), one chain
    per thread's share of the images, the shares added in order. The self-check finds which
    (:func:`checked_geometries`); the kernel then sums it the same way.

    Args:
        grad (Tensor): ``[N, O, OH, OW]`` output gradient.
        x (Tensor): ``[N, I, H, W]`` conv input.
        weight (Tensor): ``[O, I / groups, KH, KW]`` weight (its shape, strides and memory
            format are used: ATen picks its kernel by them).
        stride, padding, dilation (Sequence[int]): The conv's ``(h, w)`` geometry.
        groups (int): The conv's groups. Defaults to 1.
        bias (bool): Whether the bias gradient is wanted too. Defaults to False.

    Returns:
        tuple[Tensor, Tensor | None]: the ``[O, I / groups, KH, KW]`` weight gradient, in
        ``weight``'s memory format, and the ``[O]`` bias gradient (None without ``bias``).
    """
    if not applies(x, grad, weight, stride, padding, dilation, groups):
        return _aten(grad, x, weight, stride, padding, groups, dilation, bias)
    stride, padding = tuple(stride), tuple(padding)
    # ATen's order can depend on the thread count and the strides (for some depthwise convs)
    key = (tuple(x.shape), x.stride(), tuple(grad.shape), grad.stride(), tuple(weight.shape),
           weight.stride(), stride, padding, groups, torch.get_num_threads())
    state = _checked.get(key)
    lib = _LIB.get() if state != (False, None) else None
    if lib is not None and state is None:
        state = _checked[key] = _self_check(lib, grad, x, weight, stride, padding, groups)
        if not state[0]:  # ATen sums in another order there (another oneDNN kernel or split)
            print_log(f'mmspike: the conv weight-gradient kernel does not reproduce ATen\'s bits '
                      f'for input {tuple(x.shape)}, weight {tuple(weight.shape)}, stride '
                      f'{stride}, padding {padding}, groups {groups}, '
                      f'{torch.get_num_threads()} threads: ATen computes that gradient',
                      logger='current', level=logging.DEBUG)
    w_ok, chunks = state if lib is not None else (False, None)
    gw = _kernel(lib, grad, x, weight, stride, padding, groups) if w_ok else None
    gb = _bias_kernel(lib, grad, chunks) if bias and chunks is not None else None
    # ATen multiplies the padding's zeros too (inf * 0 = NaN), the depthwise kernel skips them
    # (the dense one multiplies packed zeros): results are kept for finite inputs only. A
    # non-finite input reaches some weight's chain through a tap inside the input (padding <
    # kernel), so a finite result means finite inputs (a non-finite ``grad`` makes the weight
    # gradient non-finite too).
    if gw is not None and not bool(torch.isfinite(gw).all()):
        gw = gb = None
    if gw is None or (bias and gb is None):
        aw, ab = _aten(grad, x, weight, stride, padding, groups, bias=bias and gb is None,
                       weight_grad=gw is None)
        gw, gb = (aw if gw is None else gw), (ab if gb is None else gb)
    return gw, gb


def conv2d_weight_grad(grad: Tensor, x: Tensor, weight: Tensor, stride: Sequence[int],
                       padding: Sequence[int], dilation: Sequence[int] = (1, 1),
                       groups: int = 1) -> Tensor:
    """The weight gradient alone: :func:`conv2d_param_grads` without ``bias``."""
    return conv2d_param_grads(grad, x, weight, stride, padding, dilation, groups)[0]


def checked_geometries() -> Dict[Tuple, bool]:
    """The geometries checked so far and whether the kernel reproduced ATen's weight-gradient
    bits there."""
    return {key: w_ok for key, (w_ok, _) in _checked.items()}


def checked_bias_orders() -> Dict[Tuple, Optional[int]]:
    """The geometries checked so far and in how many groups of images the kernel sums the bias
    gradient there to reproduce ATen's bits (None: ATen computes it)."""
    return {key: chunks for key, (_, chunks) in _checked.items()}
