"""The forward of a CPU convolution of spikes in ATen's own summation order, skipping zeros.

A spiking layer's input is mostly zeros, and in E-SpikeFormer the zeros of neighbouring pixels
sit in almost the same channels: with the 19M benchmark's weights, 21-91% of the input channels
of a 1x1 conv are silent at a pixel (56% of the multiply-adds have a zero input), and listing per
group of 6 pixels the channels non-zero in any of them still skips 49% of the multiply-adds
(the 3x3 convs after the attention stages: 49-83% zeros). oneDNN multiplies every zero. For
``y = conv2d(x, W, b)`` with stride 1 and zero padding ``p``,

.. math::

    y_{n,o,h,w} = \\Big(\\sum_{k_h, k_w} \\sum_{i} x_{n,\\,i,\\,h + k_h - p_h,\\,w + k_w - p_w}\\,
        W_{o,i,k_h,k_w}\\Big) + b_o

oneDNN's float32 AVX2 kernels behind ATen (``brgconv_1x1`` and ``brg_conv_fwd``, channels-last)
sum it, at 2 threads and at E-SpikeFormer's shapes, as ONE fused multiply-add chain per output
from +0 over the taps in ``(k_h, k_w)`` order and, per tap, the input channels ascending (taps in
the padding skipped), and add the bias after it (found by comparing candidate orders bit for
bit; at 1 thread the 1x1 kernel splits wide inputs into blocks of channels, and a one-pixel
input runs another kernel: the self-check below finds those). Such a chain never holds -0
unless a partial sum underflows (a sum that cancels rounds to +0), so a product with a zero
input (+-0) leaves it unchanged: skipping the zeros gives the same bits, with finite weights
(ATen's ``0 * inf`` is NaN). :func:`conv2d` does that, with one register tile for both kernels:
6 output pixels of a row x 16 output channels (two 256-bit registers per pixel), over the input
channels non-zero in any of the 6 pixels (the zeros inside that list are multiplied, as oneDNN
does). 1x1 convs list them per group of 6 consecutive pixels and pack the 6 values per listed
channel; kxk convs keep one channel bit mask per input pixel and OR the 6 pixels' masks per tap.
The weights are repacked per call as ``[output block][tap][I][block width]``. On a CPU with
AVX-512 the tile is 6 pixels x 64 outputs (four 512-bit registers per pixel; the last block of a
layer 48, 32, 16 or 8 wide): 24 independent chains keep both FMA units busy and each broadcast
input value serves 64 outputs, where 16 outputs in one register per pixel left the FMAs waiting
on their own latency (the same chains either way; on an Intel Xeon AVX-512 host, the 19M
benchmark's 23 kernel convs, captured inputs, best of 5 each: 325 ms with the 16-wide tile,
247 ms with this one, ATen 239 ms; 3 pixels x 64 outputs, fewer zeros listed but twice the
weight loads per FMA, and one list per pixel were both slower). On the 19M benchmark's convs at
2 threads the 1x1 convs take 0.6-0.7x ATen's time, the sparse 3x3 ones 0.45-0.85x
(``benchmarks/bench_vs_upstream.py``; an AVX2 host). Replayed alone, as above, oneDNN's convs
run faster than inside the model: a whole 19M inference on the AVX-512 host takes 0.39 s with
these kernels and 0.70 s with every conv left to ATen (channels-last, one process,
interleaved, median of 7), 0.51 s with only the kxk ones and 0.54 s with only the 1x1 ones.

**Self-check.** The order is an observation about one oneDNN build, thread count and ISA, not a
contract. The first call for a geometry (shapes, strides, padding, bias or not, thread count)
runs the kernel and ``F.conv2d`` on random normal inputs with zeros at random places and in
whole channels and compares the bits; a geometry that differs goes to ``F.conv2d`` from then on
(:func:`checked_geometries`; e.g. on the AVX-512 host oneDNN's 1x1 kernel with 1440 input channels
sums the first 1280 and the rest as two chains and adds them, found by comparing split points).
Inputs where a sample of the tiles lists more than
:data:`MAX_LISTED` of the channels go to ``F.conv2d`` too (no faster there; the same bits): so
do most of a training step's convs, whose spikes are denser (batch statistics). A
failed build (no C compiler) warns once and leaves every conv to ATen.

Used by the fast path's fused spike convs (:mod:`.fused`) for channels-last float32 convs when
the neurons' kernel backend is the C one (``MMSPIKE_KERNELS_DISABLE=c`` turns it off too).
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
#include <string.h>

/* The register tile of both kernels: R = 6 output pixels x 8 * NV (NV = 1 or 2) output channels,
   12 accumulators, each output one FMA chain from +0; the bias is added after the chain. */
#define R 6
#define TILE_ZERO                                                                               \
  __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00,     \
         a30 = a00, a31 = a00, a40 = a00, a41 = a00, a50 = a00, a51 = a00;
/* one input channel: the weight row w (8 * NV outputs) times the R pixels' values X(0..5) */
#define TILE_PIXEL(NV, r, X)                                                                    \
  s = _mm256_broadcast_ss(X(r)); a##r##0 = _mm256_fmadd_ps(s, w0, a##r##0);                    \
  if (NV > 1) a##r##1 = _mm256_fmadd_ps(s, w1, a##r##1);
#define TILE_FMA(NV, w, X)                                                                      \
  {                                                                                             \
    __m256 w0 = _mm256_loadu_ps(w), w1 = NV > 1 ? _mm256_loadu_ps((w) + 8) : w0, s;           \
    TILE_PIXEL(NV, 0, X) TILE_PIXEL(NV, 1, X) TILE_PIXEL(NV, 2, X)                              \
    TILE_PIXEL(NV, 3, X) TILE_PIXEL(NV, 4, X) TILE_PIXEL(NV, 5, X)                              \
  }
/* the first nq pixels' outputs (+ bias b when not NULL) to y (pixel stride O) */
#define TILE_STORE(NV)                                                                          \
  __m256 acc[R][2] = {{a00, a01}, {a10, a11}, {a20, a21}, {a30, a31}, {a40, a41}, {a50, a51}};  \
  for (int64_t r = 0; r < nq; ++r)                                                              \
    for (int v = 0; v < NV; ++v) {                                                              \
      __m256 s = acc[r][v];                                                                     \
      if (b) s = _mm256_add_ps(s, _mm256_loadu_ps(b + 8 * v));                                  \
      _mm256_storeu_ps(y + r * O + 8 * v, s);                                                   \
    }

/* The tile with NV = 1..4 AVX-512 registers per pixel (16 * NV outputs; NV >= 2 keeps both FMA
   units busy with 6 * NV independent chains and loads the 6 broadcasts once for more outputs):
   the same FMA chain per output (chosen at run time where the CPU has AVX-512). */
#define TILE512_ZERO                                                                            \
  __m512 acc[R][4];                                                                             \
  for (int r = 0; r < R; ++r)                                                                   \
    for (int v = 0; v < 4; ++v) acc[r][v] = _mm512_setzero_ps();
#define TILE512_FMA(NV, w, X)                                                                   \
  {                                                                                             \
    __m512 wv[4];                                                                               \
    for (int v = 0; v < NV; ++v) wv[v] = _mm512_loadu_ps((w) + 16 * v);                        \
    for (int r = 0; r < R; ++r) {                                                               \
      __m512 s = _mm512_set1_ps(*X(r));                                                         \
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(s, wv[v], acc[r][v]);            \
    }                                                                                           \
  }
#define TILE512_STORE(NV)                                                                       \
  for (int64_t r = 0; r < nq; ++r)                                                              \
    for (int v = 0; v < NV; ++v) {                                                              \
      __m512 s = acc[r][v];                                                                     \
      if (b) s = _mm512_add_ps(s, _mm512_loadu_ps(b + 16 * v));                                 \
      _mm512_storeu_ps(y + r * O + 16 * v, s);                                                  \
    }

/* The output blocks: 64 wide (AVX-512; then one of 48 or 32 where that many are left) or 16, the
   last one 16 or 8 wide (O is a multiple of 8).
   Weights are packed per block as [block][tap][I][width]. Returns the number of blocks. */
static int64_t out_blocks(int64_t O, int wide, int64_t *start, int64_t *width) {
  int64_t n = 0;
  for (int64_t o = 0; o < O; o += width[n++]) {
    start[n] = o;
    int64_t left = O - o;
    width[n] = wide && left >= 32 ? (left >= 64 ? 64 : left & ~(int64_t)15) : left >= 16 ? 16 : 8;
  }
  return n;
}

#define CG 16      /* groups of R pixels whose lists are built together */
/* 1x1: a group of nq <= R consecutive pixels over its n listed input channels idx[j] (their
   values xs[j * R + r]); wp: [I][8 * NV] weight rows. */
#define PACKED(r) (v + (r))
#define TILE1X1_DEF(NAME, TARGET, NV, LANES, ZERO, FMA, STORE)                                   \
__attribute__((target(TARGET))) static void NAME(                                              \
    const int32_t *idx, const float *xs, int64_t n, const float *wp, const float *b,           \
    float *y, int64_t O, int64_t nq) {                                                          \
  ZERO                                                                                          \
  for (int64_t j = 0; j < n; ++j) {                                                             \
    const float *v = xs + j * R;                                                                \
    FMA(NV, wp + (int64_t)idx[j] * (LANES * NV), PACKED)                                        \
  }                                                                                             \
  STORE(NV)                                                                                     \
}
#define TILE1X1(NV) TILE1X1_DEF(tile1x1_##NV, "avx2,fma", NV, 8, TILE_ZERO, TILE_FMA, TILE_STORE)
TILE1X1(1) TILE1X1(2)
#define TILE1X1_512(NV)                                                                         \
  TILE1X1_DEF(tile1x1_512_##NV, "avx512f", NV, 16, TILE512_ZERO, TILE512_FMA, TILE512_STORE)
TILE1X1_512(1) TILE1X1_512(2) TILE1X1_512(3) TILE1X1_512(4)
typedef void (*tile1x1_fn)(const int32_t *, const float *, int64_t, const float *,
                           const float *, float *, int64_t, int64_t);

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
                int64_t O, double max_listed, int nthreads, int allow512) {
  __builtin_cpu_init();
  if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) || O % 8 || I % 8)
    return -1;
  int wide = allow512 && __builtin_cpu_supports("avx512f");
  int64_t ng = (P + R - 1) / R, bs[O / 8 + 1], bw[O / 8 + 1], nob = out_blocks(O, wide, bs, bw);
  /* every 8th tile's list length (the kernel's work) against I: denser inputs go to ATen */
  int64_t listed = 0, sampled = 0;
  for (int64_t g = 0; g < ng; g += 8, sampled += I) {
    int64_t nq = P - g * R < R ? P - g * R : R;
    for (int64_t k = 0; k < I; k += 8)
      listed += __builtin_popcount(group_mask(x + g * R * I, nq, I, k));
  }
  if (listed > max_listed * sampled) return 1;
  float *wp = (float *)malloc(sizeof(float) * O * I);  /* [block][I][width] */
  if (!wp) return -2;
  int finite = 1;
  #pragma omp parallel for num_threads(nthreads) schedule(static) reduction(&& : finite)
  for (int64_t ob = 0; ob < nob; ++ob) {
    int64_t o0 = bs[ob], ow = bw[ob];
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
          int64_t o0 = bs[ob];
          const tile1x1_fn wider[5] = {tile1x1_1, tile1x1_512_1, tile1x1_512_2, tile1x1_512_3,
                                       tile1x1_512_4};
          tile1x1_fn tile = bw[ob] == 8 ? tile1x1_1 : wide ? wider[bw[ob] / 16] : tile1x1_2;
          for (int64_t g = g0; g < g1; ++g) {
            int64_t nq = P - g * R < R ? P - g * R : R, s = start[g - g0];
            tile(idx + s, xs + s * R, start[g - g0 + 1] - s, wp + o0 * I, b ? b + o0 : NULL,
                 y + g * R * O + o0, O, nq);
          }
        }
      }
    }
    free(idx); free(xs);
  }
  free(wp);
  return err;
}

#define GC 32   /* tiles per work item (their channel lists are built together) */
#define MAX_KH 16
#define MAX_T 256
/* kxk: nq <= R output pixels of a row (from column ow0) over the taps in (kh, kw) order and,
   per tap t, the input channels listed in um[t] (ascending). rows[kh]: the input row of tap row
   kh or NULL (padding); zero: I zeros, read for pixels in the padding or past nq;
   wp: [T][I][8 * NV] weight rows. */
#define WINDOW(r) (p[r] + i)
/* One definition for both ISAs: LANES outputs per register, ZERO / FMA / STORE the tile's. */
#define TILEKXK_DEF(NAME, TARGET, NV, LANES, ZERO, FMA, STORE)                                   \
__attribute__((target(TARGET))) static void NAME(                                              \
    const float *const *rows, const uint64_t *um, int64_t nw, int64_t KH, int64_t KW,          \
    const float *wp, int64_t I, const float *b, float *y, int64_t O, int64_t nq, int64_t ow0,   \
    int64_t W, int64_t pw, const float *zero) {                                                 \
  ZERO                                                                                          \
  for (int64_t t = 0; t < KH * KW; ++t) {                                                       \
    const float *row = rows[t / KW];                                                            \
    if (!row) continue;                                                                         \
    const float *p[R];                                                                          \
    for (int64_t r = 0, c = ow0 + t % KW - pw; r < R; ++r, ++c)                                 \
      p[r] = r < nq && c >= 0 && c < W ? row + c * I : zero;                                    \
    const float *wt = wp + t * I * (LANES * NV);                                                \
    for (int64_t k = 0; k < nw; ++k)                                                            \
      for (uint64_t bits = um[t * nw + k]; bits; bits &= bits - 1) {                            \
        int64_t i = k * 64 + __builtin_ctzll(bits);                                             \
        FMA(NV, wt + i * (LANES * NV), WINDOW)                                                  \
      }                                                                                         \
  }                                                                                             \
  STORE(NV)                                                                                     \
}
#define TILEKXK(NV) TILEKXK_DEF(tilekxk_##NV, "avx2,fma", NV, 8, TILE_ZERO, TILE_FMA, TILE_STORE)
TILEKXK(1) TILEKXK(2)
#define TILEKXK_512(NV)                                                                         \
  TILEKXK_DEF(tilekxk_512_##NV, "avx512f", NV, 16, TILE512_ZERO, TILE512_FMA, TILE512_STORE)
TILEKXK_512(1) TILEKXK_512(2) TILEKXK_512(3) TILEKXK_512(4)
typedef void (*tilekxk_fn)(const float *const *, const uint64_t *, int64_t, int64_t, int64_t,
                           const float *, int64_t, const float *, float *, int64_t, int64_t,
                           int64_t, int64_t, int64_t, const float *);

/* bit i % 64 of mask[i / 64]: x[i] is not zero (NaN included) */
__attribute__((target("avx2"))) static void pixel_mask(const float *x, int64_t I, uint64_t *mask,
                                                       int64_t nw) {
  const __m256 z = _mm256_setzero_ps();
  memset(mask, 0, nw * sizeof(uint64_t));
  for (int64_t k = 0; k < I; k += 8)
    mask[k / 64] |= (uint64_t)_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + k), z,
                                                               _CMP_NEQ_UQ)) << (k % 64);
}

/* y = conv2d(x, w, b), stride 1, zero padding (ph, pw): x [N, H, W, I] (channels-last),
   w [O, I, KH, KW] with element strides (sO, sI, sKH, sKW), b [O] or NULL,
   y [N, OH, OW, O]. Returns 0 (y written), 1 (a sample of the tiles lists more than max_listed
   of the input channels: nothing written), 2 (a weight is not finite: nothing written),
   -1 (no AVX2 + FMA, I or O not a multiple of 8, kernel too large), -2 (out of memory). */
int convkxk_f32(const float *x, const float *w, const float *b, float *y, int64_t N,
                   int64_t H, int64_t W, int64_t I, int64_t O, int64_t KH, int64_t KW,
                   int64_t ph, int64_t pw, int64_t sO, int64_t sI, int64_t sKH, int64_t sKW,
                   double max_listed, int nthreads, int allow512) {
  __builtin_cpu_init();
  if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) || O % 8 || I % 8
      || KH > MAX_KH || KH * KW > MAX_T)
    return -1;
  int wide = allow512 && __builtin_cpu_supports("avx512f");
  int64_t OH = H + 2 * ph - KH + 1, OW = W + 2 * pw - KW + 1, T = KH * KW;
  int64_t nw = (I + 63) / 64, ngr = (OW + R - 1) / R;
  int64_t bs[O / 8 + 1], bw[O / 8 + 1], nob = out_blocks(O, wide, bs, bw);
  int64_t ntiles = N * OH * ngr, nitems = (ntiles + GC - 1) / GC;
  uint64_t *masks = (uint64_t *)malloc(sizeof(uint64_t) * N * H * W * nw);
  float *wp = (float *)malloc(sizeof(float) * O * I * T);  /* [block][T][I][width] */
  float *zero = (float *)calloc(I, sizeof(float));
  int err = 0, finite = 1;
  if (!masks || !wp || !zero) { err = -2; goto done; }
  {  /* the listed fraction of every 7th row's tiles, centre tap (inside the input), from those
        rows' masks alone: most of a training step's convs go to ATen here */
    int64_t listed = 0, total = 0;
    for (int64_t q = 0; q < N * H; q += 7)
      for (int64_t p = q * W; p < (q + 1) * W; ++p) pixel_mask(x + p * I, I, masks + p * nw, nw);
    for (int64_t q = 0; q < N * H; q += 7)
      for (int64_t c = 0; c + R <= W; c += R, total += I)
        for (int64_t k = 0; k < nw; ++k) {
          uint64_t u = 0;
          for (int64_t r = 0; r < R; ++r) u |= masks[(q * W + c + r) * nw + k];
          listed += __builtin_popcountll(u);
        }
    if (listed > max_listed * total) { err = 1; goto done; }
  }
  #pragma omp parallel for num_threads(nthreads) schedule(static)
  for (int64_t p = 0; p < N * H * W; ++p)
    if ((p / W) % 7) pixel_mask(x + p * I, I, masks + p * nw, nw);  /* the other rows' masks */
  #pragma omp parallel for num_threads(nthreads) schedule(static) reduction(&& : finite)
  for (int64_t ob = 0; ob < nob; ++ob) {
    int64_t o0 = bs[ob], ow = bw[ob];
    for (int64_t t = 0; t < T; ++t)
      for (int64_t i = 0; i < I; ++i)
        for (int64_t o = 0; o < ow; ++o) {
          float v = w[(o0 + o) * sO + i * sI + (t / KW) * sKH + (t % KW) * sKW];
          finite = finite && isfinite(v);
          wp[o0 * I * T + (t * I + i) * ow + o] = v;
        }
  }
  if (!finite) { err = 2; goto done; }  /* ATen's 0 * inf is NaN: skipping would lose it */
  #pragma omp parallel num_threads(nthreads)
  {
    uint64_t *um = (uint64_t *)malloc(sizeof(uint64_t) * GC * T * nw);
    const float *(*rows)[MAX_KH] = malloc(sizeof(*rows) * GC);
    if (!um || !rows) {
      #pragma omp atomic write
      err = -2;
    }
    #pragma omp barrier
    if (!err) {
      #pragma omp for schedule(static)
      for (int64_t it = 0; it < nitems; ++it) {
        int64_t j0 = it * GC, j1 = j0 + GC < ntiles ? j0 + GC : ntiles;
        for (int64_t j = j0; j < j1; ++j) {  /* tile j: row q = (n, oh), columns from g * R */
          int64_t q = j / ngr, g = j % ngr, n = q / OH, oh = q % OH;
          int64_t nq = OW - g * R < R ? OW - g * R : R;
          for (int64_t kh = 0; kh < KH; ++kh) {
            int64_t ih = oh + kh - ph;
            rows[j - j0][kh] = ih >= 0 && ih < H ? x + (n * H + ih) * W * I : NULL;
          }
          /* per tap: the channels non-zero in any of the tile's input pixels */
          for (int64_t t = 0; t < T; ++t) {
            int64_t ih = oh + t / KW - ph, c0 = g * R + t % KW - pw;
            uint64_t *u = um + ((j - j0) * T + t) * nw;
            memset(u, 0, nw * sizeof(uint64_t));
            if (ih < 0 || ih >= H) continue;
            for (int64_t c = c0 > 0 ? c0 : 0; c < c0 + nq && c < W; ++c) {
              const uint64_t *m = masks + ((n * H + ih) * W + c) * nw;
              for (int64_t k = 0; k < nw; ++k) u[k] |= m[k];
            }
          }
        }
        for (int64_t ob = 0; ob < nob; ++ob) {
          int64_t o0 = bs[ob];
          const tilekxk_fn wider[5] = {tilekxk_1, tilekxk_512_1, tilekxk_512_2, tilekxk_512_3,
                                       tilekxk_512_4};
          tilekxk_fn tile = bw[ob] == 8 ? tilekxk_1 : wide ? wider[bw[ob] / 16] : tilekxk_2;
          for (int64_t j = j0; j < j1; ++j) {
            int64_t q = j / ngr, g = j % ngr, nq = OW - g * R < R ? OW - g * R : R;
            tile(rows[j - j0], um + (j - j0) * T * nw, nw, KH, KW, wp + o0 * I * T, I,
                 b ? b + o0 : NULL, y + (q * OW + g * R) * O + o0, O, nq, g * R, W, pw, zero);
          }
        }
      }
    }
    free(um); free(rows);
  }
done:
  free(masks); free(wp); free(zero);
  return err;
}
'''

_vp, _i64 = ctypes.c_void_p, ctypes.c_int64
_LIB = kernels.LazyCLibrary(
    _SOURCE, 'spike_conv_fwd',
    {'conv1x1_f32': ([_vp] * 4 + [_i64] * 3 + [ctypes.c_double] + [ctypes.c_int] * 2,
                     ctypes.c_int),
     'convkxk_f32': ([_vp] * 4 + [_i64] * 13 + [ctypes.c_double] + [ctypes.c_int] * 2,
                     ctypes.c_int)},
    'ATen computes the spike convs')
#: geometry -> whether the kernel's bits equal ATen's there (checked on its first call)
_checked: Dict[tuple, bool] = {}
#: inputs whose sampled tiles list more than this fraction of the channels go to ATen, 1x1 /
#: kxk (about where the kernel, ~100 GFLOP/s on the listed channels at 2 threads, stops beating
#: oneDNN's dense 115-145 on E-SpikeFormer's convs)
MAX_LISTED = {'1x1': 0.85, 'kxk': 0.7}
#: the largest kernel height and number of taps the kxk kernel takes (its per-tile tables)
MAX_KERNEL, MAX_TAPS = 16, 256


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
            and groups == 1 and stride == (1, 1) and dilation == (1, 1)
            and padding[0] < weight.shape[2] <= MAX_KERNEL and padding[1] < weight.shape[3]
            and weight.shape[2] * weight.shape[3] <= MAX_TAPS
            and weight.shape[0] % 8 == 0 and weight.shape[1] % 8 == 0
            and _channels_last(x) and x.numel() > 0 and not torch.is_autocast_enabled('cpu'))


def _kernel(lib: ctypes.CDLL, x: Tensor, weight: Tensor, bias: Optional[Tensor],
            padding: Tuple[int, int], max_listed: float, avx512: bool = True) -> Optional[Tensor]:
    """The kernel's output, or None where it wrote nothing (too dense, a non-finite weight, no
    AVX2 + FMA, out of memory). ``avx512=False``: the AVX2 tiles even where the CPU has
    AVX-512 (tests run both there)."""
    N, I, H, W = x.shape
    O, _, KH, KW = weight.shape
    OH, OW = H + 2 * padding[0] - KH + 1, W + 2 * padding[1] - KW + 1
    if OH <= 0 or OW <= 0:
        return None
    b = None if bias is None else bias.contiguous().data_ptr()
    y = torch.empty(N, O, OH, OW, memory_format=torch.channels_last)
    threads = torch.get_num_threads()
    if KH == KW == 1:
        w = weight.reshape(O, I).contiguous()
        ret = lib.conv1x1_f32(x.data_ptr(), w.data_ptr(), b, y.data_ptr(), N * H * W, I, O,
                              max_listed, threads, int(avx512))
    else:
        ret = lib.convkxk_f32(x.data_ptr(), weight.data_ptr(), b, y.data_ptr(), N, H, W, I, O,
                              KH, KW, *padding, *weight.stride(), max_listed, threads,
                              int(avx512))
    return y if ret == 0 else None


def _self_check(lib: ctypes.CDLL, x: Tensor, weight: Tensor, bias: Optional[Tensor],
                padding: Tuple[int, int]) -> bool:
    """Whether the kernel gives ``F.conv2d``'s bits on random normal tensors of this geometry
    and these strides, with zeros at random places (half) and in whole channels (a quarter)."""
    gen = torch.Generator().manual_seed(0)
    xr = torch.empty_strided(x.shape, x.stride()).normal_(generator=gen)
    xr.masked_fill_(torch.rand(x.shape, generator=gen) < 0.5, 0.0)
    xr.masked_fill_(torch.rand(1, x.shape[1], 1, 1, generator=gen) < 0.25, 0.0)
    wr = torch.empty_strided(weight.shape, weight.stride()).normal_(generator=gen)
    br = None if bias is None else torch.randn(bias.shape, generator=gen)
    out = _kernel(lib, xr, wr, br, padding, 1.0)
    return out is not None and torch.equal(out, F.conv2d(xr, wr, br, 1, padding))


def conv2d(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None,
           stride: Union[int, Sequence[int]] = 1, padding: Union[int, Sequence[int], str] = 0,
           dilation: Union[int, Sequence[int]] = 1, groups: int = 1) -> Tensor:
    """``F.conv2d(x, weight, bias, stride, padding, dilation, groups)``, bit for bit, skipping
    the zeros of ``x`` where the kernel runs.

    The kernel runs where :func:`applies` holds (CPU, float32, channels-last ``x``, stride 1,
    no dilation, groups 1, zero padding smaller than the kernel, input and output channels
    multiples of 8, no autocast), the weight is finite, a sample of the tiles lists at most
    :data:`MAX_LISTED` of the input channels, and the build and the self-check (module
    docstring) passed; ``F.conv2d`` computes it everywhere else.

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
    padding = _pair(padding)
    # ATen's order depends on the thread count (and on the input's width at 1 thread)
    key = (tuple(x.shape), x.stride(), tuple(weight.shape), weight.stride(), padding,
           bias is None, torch.get_num_threads())
    ok = _checked.get(key)
    lib = _LIB.get() if ok is not False else None
    if lib is not None and ok is None:
        ok = _checked[key] = _self_check(lib, x, weight, bias, padding)
        if not ok:  # ATen sums in another order there
            print_log(f'mmspike: the spike-conv kernel does not reproduce ATen\'s bits for '
                      f'input {tuple(x.shape)}, weight {tuple(weight.shape)}, padding '
                      f'{padding}, {torch.get_num_threads()} threads: ATen computes that conv',
                      logger='current', level=logging.DEBUG)
    kind = '1x1' if weight.shape[2:] == (1, 1) else 'kxk'
    out = _kernel(lib, x, weight, bias, padding, MAX_LISTED[kind]) if ok else None
    return F.conv2d(x, weight, bias, 1, padding) if out is None else out


def checked_geometries() -> Dict[Tuple, bool]:
    """The geometries checked so far and whether the kernel reproduced ATen's bits there."""
    return dict(_checked)
