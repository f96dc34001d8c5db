"""Fused integer-firing kernels of the fast execution path.

One pass forward, one pass backward. The forward reads the membrane potential ``u`` and writes the
spikes ``round(clamp(u, 0, D)) / norm`` and, when a backward will follow, one *code byte* per
element: bits 0-6 hold the integer spike count, bit 7 the straight-through window (not
``u < 0 or u > D``; not ``u <= 0 or u >= D`` for the open window; NaN passes, as upstream).
The backward reads the gradient and the code byte and writes ``window ? grad / norm : 0``; a
conv fed by the spikes rebuilds them from the same byte (:func:`decode_spikes`), so neither the
float input nor the float spikes are kept. A neuron alone keeps just the window (``bool``).

**Backend table.** Kernels come from an explicit, ordered table of backends
(:func:`backend_names`), then the torch ops, which always work:

* ``'c'``: float32/float64 CPU tensors only. A small C kernel (vectorised for AVX2/AVX-512 by
  GCC's ``target_clones``, threads by OpenMP) built on first use with the system C compiler
  (``$CC``, default gcc) into a per-user cache (``$MMSPIKE_KERNEL_CACHE`` or ``~/.cache/mmspike``)
  and loaded with ctypes; no PyTorch headers, so the build takes well under a second.
* ``'triton'``: float32/float16/bfloat16 CUDA tensors when Triton is installed (imported on first
  use); launched under ``torch.cuda.device(t.device)``, so a model on a GPU that is not the
  current device runs there. ``TRITON_INTERPRET=1`` runs it on CPU tensors (tests).
* ``'torch'``: the same arithmetic as a few fused-by-hand torch ops; the reference.

**Capability probe.** Before a backend first serves a (device, dtype) and kernel variant, it is
built and run on a small tensor of boundary values (0, D, ties, -0.0, NaN, out of range, random)
and its forward, backward and decoded spikes must equal the torch ops on the same device exactly
(NaN matching NaN). A build error, a launch error or a mismatch disables that backend for that
(device, dtype) with ONE warning naming the backend, device, dtype and cause; the next backend
of the table (the torch ops at the latest) is used from then on. (During a CUDA graph capture no
probe runs: a kernel not yet checked is replaced by the torch ops in the captured graph.)

**Which backend.** Each integer neuron holds its choice in ``neuron.kernel_backend`` (``'auto'``
or a backend name), set on a whole model by :func:`~mmspike.models.neurons.set_kernel_backend`
or for a block by the :func:`~mmspike.models.neurons.kernel_backend` context manager; the
kernel functions take it as their ``backend`` argument. ``'auto'`` takes the first backend of the
table that applies to the tensor and passes its probe; a named backend is used where it applies
(its device and dtypes) and passes, else the automatic choice. Environment variables, read ONCE
when the table is built (first use, or :func:`rebuild_backend_table`), never per call:

* ``MMSPIKE_KERNELS_DISABLE=triton,c``: forbid backends (even when a module names them);
* ``MMSPIKE_KERNEL_BACKEND=torch`` (or ``c``, ``triton``): what ``'auto'`` means;
* ``MMSPIKE_CPU_KERNEL=0``: the older spelling of ``MMSPIKE_KERNELS_DISABLE=c``.

**Inference BatchNorm in the firing pass** (:func:`fire_bn_forward`, C backend): a BN with
running statistics just before a neuron runs inside its firing pass as ATen's CPU batch norm
rounds it, ``fma(x, alpha, beta)`` with ``alpha = (1 / sqrt(var + eps)) * weight`` and
``beta = fma(-mean, alpha, bias)``. Its own probe compares the BN values bit for bit with
``F.batch_norm`` (a build of ATen without FMA rounds twice); on a mismatch BN runs as its own op
(one warning), the backend's other kernels are unaffected.

**Training BatchNorm in the firing pass** (:func:`fire_bn_train_forward` /
:func:`fire_bn_train_backward`, C backend, channels-last): ATen computes the batch statistics
(``torch.batch_norm_update_stats``, which also updates the running ones); the kernel normalises
and fires in one pass, and in backward makes the neuron's gradient on the fly inside ATen's
channels-last batch norm backward, in its order and roundings (see the C source). Its probe
compares forward and gradients with ``F.batch_norm(training=True)`` and autograd.

All backends compute exactly what the plain path computes on the same device (clamp, round half-up
via ``floor + (frac >= 0.5)``, half to even, or ``floor(c + 0.5)`` with the sum rounded in the
input dtype (upstream's large family), then the division by ``norm`` as torch does it:
a true division in float32/float64 on the CPU, a multiplication by the float32 reciprocal on
CUDA), so the spikes are bit-identical to it; the probe checks exactly that.
"""
import ctypes
import hashlib
import os
import platform
import subprocess
import sys
import tempfile
import threading
import warnings
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
from torch import Tensor

from .rounding import round_to_int

#: Largest D whose spike count fits the 7 count bits of a code byte.
MAX_CODED_SPIKES = 127
WINDOW_BIT = 0x80
COUNT_BITS = 0x7F

# --------------------------------------------------------------------------------------- C (CPU)
_C_SOURCE = r'''
#include <stdint.h>
#include <math.h>
#include <stdlib.h>

#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#define CHUNK 16384
#define PAR _Pragma("omp parallel for num_threads(nthreads) schedule(static) \
                      if(nchunks > 1 && nthreads > 1)")
#define PRAGMA(x) _Pragma(#x)
#define PAR_SUM(v) PRAGMA(omp parallel for num_threads(nthreads) schedule(static) \
                          reduction(+:v) if(nchunks > 1 && nthreads > 1))

/* Branch-free on purpose: -fno-trapping-math lets GCC if-convert and vectorise the selects.
   NaN propagates like torch.clamp / floor (all comparisons false). The flags (rounding, window,
   code kind) are compile-time constants in each instantiation of fwd_body: GCC does not unswitch
   a loop on several runtime flags, and with them as variables the loop ran 8x slower than
   torch.clamp (scalar code). */
#define INL static inline __attribute__((always_inline))
#define DEFINE(T, SUF, FLOOR, RINT)                                                              \
INL T round_##SUF(T c, const int rmode) {                                                       \
  if (rmode == 1) { T fl = FLOOR(c); return fl + ((c - fl) >= (T)0.5 ? (T)1 : (T)0); }          \
  if (rmode == 2) return FLOOR(c + (T)0.5);                                                     \
  return RINT(c);                                                                               \
}                                                                                               \
INL int fwd_body_##SUF(const T *restrict u, T *restrict out, uint8_t *restrict code,            \
                       int64_t lo, int64_t hi, T D, T norm, const int rmode,                    \
                       const int open_w, const int kind) {                                      \
  int bad = 0; /* non-finite inputs: x - x is NaN for NaN and +-Inf */                          \
  for (int64_t i = lo; i < hi; ++i) {                                                           \
    T x = u[i];                                                                                 \
    bad += !(x - x == (T)0);                                                                    \
    T c = x > D ? D : x;                                                                        \
    c = x < (T)0 ? (T)0 : c;                                                                    \
    T r = round_##SUF(c, rmode);                                                                \
    out[i] = r / norm;                                                                          \
    if (kind) { /* 1: count | window << 7, 2: window only */                                    \
      uint8_t w = open_w ? !((x <= (T)0) | (x >= D)) : !((x < (T)0) | (x > D));                 \
      uint8_t k = (uint8_t)(int)(r == r ? r : (T)0);                                            \
      code[i] = kind == 1 ? (uint8_t)(k | (w << 7)) : w;                                        \
    }                                                                                           \
  }                                                                                             \
  return bad;                                                                                   \
}                                                                                               \
CLONES static int fwd_##SUF(const T *restrict u, T *restrict out, uint8_t *restrict code,      \
                             int64_t lo, int64_t hi, T D, T norm, int rmode, int open_w,        \
                             int kind) {                                                        \
  switch (rmode * 6 + open_w * 3 + kind) {                                                      \
    case 0: return fwd_body_##SUF(u, out, code, lo, hi, D, norm, 0, 0, 0);                      \
    case 1: return fwd_body_##SUF(u, out, code, lo, hi, D, norm, 0, 0, 1);                      \
    case 2: return fwd_body_##SUF(u, out, code, lo, hi, D, norm, 0, 0, 2);                      \
    case 3: return fwd_body_##SUF(u, out, code, lo, hi, D, norm, 0, 1, 0);                      \
    case 4: return fwd_body_##SUF(u, out, code, lo, hi, D, norm, 0, 1, 1);                      \
    case 5: return fwd_body_##SUF(u, out, code, lo, hi, D, norm, 0, 1, 2);                      \
    case 6: return fwd_body_##SUF(u, out, code, lo, hi, D, norm, 1, 0, 0);                      \
    case 7: return fwd_body_##SUF(u, out, code, lo, hi, D, norm, 1, 0, 1);                      \
    case 8: return fwd_body_##SUF(u, out, code, lo, hi, D, norm, 1, 0, 2);                      \
    case 9: return fwd_body_##SUF(u, out, code, lo, hi, D, norm, 1, 1, 0);                      \
    case 10: return fwd_body_##SUF(u, out, code, lo, hi, D, norm, 1, 1, 1);                     \
    case 11: return fwd_body_##SUF(u, out, code, lo, hi, D, norm, 1, 1, 2);                     \
    case 12: return fwd_body_##SUF(u, out, code, lo, hi, D, norm, 2, 0, 0);                     \
    case 13: return fwd_body_##SUF(u, out, code, lo, hi, D, norm, 2, 0, 1);                     \
    case 14: return fwd_body_##SUF(u, out, code, lo, hi, D, norm, 2, 0, 2);                     \
    case 15: return fwd_body_##SUF(u, out, code, lo, hi, D, norm, 2, 1, 0);                     \
    case 16: return fwd_body_##SUF(u, out, code, lo, hi, D, norm, 2, 1, 1);                     \
    case 17: return fwd_body_##SUF(u, out, code, lo, hi, D, norm, 2, 1, 2);                     \
  }                                                                                             \
  return 0;                                                                                     \
}                                                                                               \
CLONES static void bwd_##SUF(const T *restrict g, const uint8_t *restrict code,               \
                             T *restrict gin, int64_t lo, int64_t hi, T norm, int wbit) {       \
  for (int64_t i = lo; i < hi; ++i) {                                                           \
    T v = g[i] / norm;                                                                          \
    gin[i] = (code[i] & wbit) ? v : (T)0;                                                       \
  }                                                                                             \
}                                                                                               \
CLONES static void bwd_inplace_##SUF(T *g, const uint8_t *restrict code, int64_t lo,          \
                                     int64_t hi, T norm, int wbit) {                            \
  for (int64_t i = lo; i < hi; ++i) {                                                           \
    T v = g[i] / norm;                                                                          \
    g[i] = (code[i] & wbit) ? v : (T)0;                                                         \
  }                                                                                             \
}                                                                                               \
CLONES static void dec_##SUF(const uint8_t *restrict code, T *restrict s, int64_t lo,          \
                             int64_t hi, T norm) {                                              \
  for (int64_t i = lo; i < hi; ++i) s[i] = (T)(code[i] & 0x7F) / norm;                          \
}                                                                                               \
int64_t fire_fwd_##SUF(const T *u, T *out, uint8_t *code, int64_t n, double D, double norm,     \
                       int rmode, int open_w, int full, int nthreads) {                         \
  int64_t nchunks = (n + CHUNK - 1) / CHUNK, bad = 0;                                           \
  PAR_SUM(bad) for (int64_t c = 0; c < nchunks; ++c) {                                          \
    int64_t lo = c * CHUNK, hi = lo + CHUNK < n ? lo + CHUNK : n;                               \
    bad += fwd_##SUF(u, out, code, lo, hi, (T)D, (T)norm, rmode, open_w,                        \
                     code ? (full ? 1 : 2) : 0);                                                \
  }                                                                                             \
  return bad; /* the number of non-finite inputs, for the neuron's check */                     \
}                                                                                               \
void fire_bwd_##SUF(const T *g, const uint8_t *code, T *gin, int64_t n, double norm,           \
                    int wbit, int nthreads) {                                                   \
  int64_t nchunks = (n + CHUNK - 1) / CHUNK;                                                    \
  PAR for (int64_t c = 0; c < nchunks; ++c) {                                                   \
    int64_t lo = c * CHUNK, hi = lo + CHUNK < n ? lo + CHUNK : n;                               \
    if (gin == g) bwd_inplace_##SUF(gin, code, lo, hi, (T)norm, wbit);                          \
    else bwd_##SUF(g, code, gin, lo, hi, (T)norm, wbit);                                        \
  }                                                                                             \
}                                                                                               \
void fire_dec_##SUF(const uint8_t *code, T *s, int64_t n, double norm, int nthreads) {          \
  int64_t nchunks = (n + CHUNK - 1) / CHUNK;                                                    \
  PAR for (int64_t c = 0; c < nchunks; ++c) {                                                   \
    int64_t lo = c * CHUNK, hi = lo + CHUNK < n ? lo + CHUNK : n;                               \
    dec_##SUF(code, s, lo, hi, (T)norm);                                                        \
  }                                                                                             \
}

DEFINE(float, f32, floorf, nearbyintf)
DEFINE(double, f64, floor, nearbyint)

/* Inference BatchNorm fused into the firing pass: u = fma(x, alpha, beta) per channel, alpha =
   (1 / sqrt(var + eps)) * weight and beta = fma(-mean, alpha, bias), which is how ATen's CPU
   batch norm rounds (its vector kernels are built with FMA contraction; the backend probe checks
   that this build of ATen agrees, else BN runs as its own op). One variant per ISA level: FMA
   needs its own target flag (not implied by avx512f), and the default variant calls libm's
   correctly rounded fma. Rows: a pixel's C channels (channels-last, cl = 1) or a channel plane
   of HW pixels (NCHW, cl = 0). */
#define DEFINE_BN(T, SUF, FMA, SQRT)                                                             \
INL int bnfire_rows_##SUF(const T *u, T *out, int64_t r0, int64_t r1,                           \
                          int64_t len, int64_t C, const T *restrict a, const T *restrict b,     \
                          T D, T norm, const int rmode, const int cl) {                         \
  int bad = 0;                                                                                  \
  for (int64_t r = r0; r < r1; ++r) {                                                           \
    const T *ur = u + r * len;                                                                  \
    T *outr = out + r * len;                                                                    \
    const T as = cl ? (T)0 : a[r % C], bs = cl ? (T)0 : b[r % C];                                \
    _Pragma("GCC ivdep") /* out may be u: each element is read before it is written */          \
    for (int64_t j = 0; j < len; ++j) {                                                         \
      T x = FMA(ur[j], cl ? a[j] : as, cl ? b[j] : bs);                                         \
      bad += !(x - x == (T)0);                                                                  \
      T c = x > D ? D : x;                                                                      \
      c = x < (T)0 ? (T)0 : c;                                                                  \
      outr[j] = rmode == 3 ? x : round_##SUF(c, rmode) / norm; /* 3: BN only (the probe) */    \
    }                                                                                           \
  }                                                                                             \
  return bad;                                                                                   \
}                                                                                               \
BN_VARIANTS(T, SUF)                                                                             \
int64_t fire_bn_fwd_##SUF(const T *u, T *out, int64_t nrows, int64_t len, int64_t C, int cl,    \
                          const T *w, const T *bias, const T *mean, const T *var, double eps,   \
                          double D, double norm, int rmode, int nthreads) {                     \
  T *ab = (T *)malloc(2 * C * sizeof(T));                                                       \
  if (!ab) return -1;                                                                           \
  for (int64_t c = 0; c < C; ++c) {                                                             \
    T inv = (T)1 / SQRT(var[c] + (T)eps);                                                       \
    ab[c] = inv * (w ? w[c] : (T)1);                                                            \
    ab[C + c] = FMA(-mean[c], ab[c], bias ? bias[c] : (T)0);                                    \
  }                                                                                             \
  int (*rows)(const T *, T *, int64_t, int64_t, int64_t, int64_t, const T *, const T *, T, T,  \
              int, int) = bnfire_v0_##SUF;                                                      \
  __builtin_cpu_init();                                                                         \
  if (__builtin_cpu_supports("fma") && __builtin_cpu_supports("avx2"))                          \
    rows = __builtin_cpu_supports("avx512f") ? bnfire_v4_##SUF : bnfire_v3_##SUF;               \
  int64_t step = len >= CHUNK ? 1 : CHUNK / len;                                                \
  int64_t nchunks = (nrows + step - 1) / step, bad = 0;                                         \
  PAR_SUM(bad) for (int64_t k = 0; k < nchunks; ++k) {                                          \
    int64_t r0 = k * step, r1 = r0 + step < nrows ? r0 + step : nrows;                          \
    bad += rows(u, out, r0, r1, len, C, ab, ab + C, (T)D, (T)norm, rmode, cl);                  \
  }                                                                                             \
  free(ab);                                                                                     \
  return bad;                                                                                   \
}

/* The row loop with the rounding mode and layout as compile-time constants, per ISA level. */
#define BN_VARIANT(T, SUF, TAG, ATTR)                                                           \
ATTR static int bnfire_##TAG##_##SUF(const T *u, T *out, int64_t r0, int64_t r1, int64_t len,   \
                                     int64_t C, const T *a, const T *b, T D, T norm, int rmode, \
                                     int cl) {                                                  \
  switch (rmode * 2 + cl) {                                                                     \
    case 0: return bnfire_rows_##SUF(u, out, r0, r1, len, C, a, b, D, norm, 0, 0);              \
    case 1: return bnfire_rows_##SUF(u, out, r0, r1, len, C, a, b, D, norm, 0, 1);              \
    case 2: return bnfire_rows_##SUF(u, out, r0, r1, len, C, a, b, D, norm, 1, 0);              \
    case 3: return bnfire_rows_##SUF(u, out, r0, r1, len, C, a, b, D, norm, 1, 1);              \
    case 4: return bnfire_rows_##SUF(u, out, r0, r1, len, C, a, b, D, norm, 2, 0);              \
    case 5: return bnfire_rows_##SUF(u, out, r0, r1, len, C, a, b, D, norm, 2, 1);              \
    case 6: return bnfire_rows_##SUF(u, out, r0, r1, len, C, a, b, D, norm, 3, 0);              \
    case 7: return bnfire_rows_##SUF(u, out, r0, r1, len, C, a, b, D, norm, 3, 1);              \
  }                                                                                             \
  return 0;                                                                                     \
}
#define BN_VARIANTS(T, SUF)                                                                     \
  BN_VARIANT(T, SUF, v4, __attribute__((target("avx512f,fma"))))                               \
  BN_VARIANT(T, SUF, v3, __attribute__((target("avx2,fma"))))                                  \
  BN_VARIANT(T, SUF, v0, )

DEFINE_BN(float, f32, fmaf, sqrtf)
DEFINE_BN(double, f64, fma, sqrt)

/* Training BatchNorm fused with the neuron, on channels-last rows of C channels (a pixel each).
   Forward: ATen's batch statistics (the caller's batch_norm_update_stats), u = fma(x, alpha,
   beta) as in the inference kernel with alpha = invstd * weight, then the firing pass with code
   bytes. Backward: ATen's channels-last batch norm backward with the neuron's gradient
   dy = window ? g / norm : 0 made on the fly from g and the code byte (never stored): per
   thread range of rows (at::parallel_for's split of the N rows, grain 1) the sums of dy and
   fma(x - mean, dy, dotp) in row order from +0, the ranges added in double in thread order; then
   dx = fma(-(x - mean), k, dy - sum / N) * invstd * weight with k = dotp * invstd * invstd / N
   (the last C % lanes channels, ATen's partial vector, unfused: (dy - sum / N) - (x - mean) * k),
   grad weight = dotp * invstd, grad bias = sum; invstd = 1 / sqrt(var + eps) in double. ATen's
   vector kernels are built with FMA contraction: these fma are its roundings (found by
   comparison; the backend probe checks that this build of ATen agrees). */
#define BNT_BLOCK 256
#define DEFINE_BNT(T, SUF, FMA)                                                                  \
INL int64_t bnt_fwd_rows_##SUF(const T *restrict x, T *restrict out, uint8_t *restrict code,    \
                               int64_t r0, int64_t r1, int64_t C, const T *restrict a,          \
                               const T *restrict b, T D, T norm, int rmode, int open_w) {       \
  T u[BNT_BLOCK];                                                                               \
  int64_t bad = 0;                                                                              \
  for (int64_t r = r0; r < r1; ++r)                                                             \
    for (int64_t j0 = 0; j0 < C; j0 += BNT_BLOCK) {                                             \
      const int64_t n = C - j0 < BNT_BLOCK ? C - j0 : BNT_BLOCK, o = r * C + j0;                \
      for (int64_t j = 0; j < n; ++j) u[j] = FMA(x[o + j], a[j0 + j], b[j0 + j]);               \
      bad += fwd_##SUF(u, out + o, code + o, 0, n, D, norm, rmode, open_w, 1);                  \
    }                                                                                           \
  return bad;                                                                                   \
}                                                                                               \
INL void bnt_sum_rows_##SUF(const T *restrict g, const uint8_t *restrict code,                  \
                            const T *restrict x, int64_t r0, int64_t r1, int64_t C,             \
                            const T *restrict mean, T norm, int wbit, T *restrict sum,          \
                            T *restrict dotp) {                                                 \
  for (int64_t r = r0; r < r1; ++r) {                                                           \
    const int64_t o = r * C;                                                                    \
    for (int64_t j = 0; j < C; ++j) {                                                           \
      T v = g[o + j] / norm;                                                                    \
      T dy = (code[o + j] & wbit) ? v : (T)0;                                                   \
      sum[j] = sum[j] + dy;                                                                     \
      dotp[j] = FMA(x[o + j] - mean[j], dy, dotp[j]);                                           \
    }                                                                                           \
  }                                                                                             \
}                                                                                               \
INL void bnt_dx_rows_##SUF(const T *g, const uint8_t *restrict code, const T *restrict x,      \
                           T *dx, int64_t r0, int64_t r1, int64_t C, const T *restrict mean,    \
                           const T *restrict k, const T *restrict gm, const T *restrict inv,    \
                           const T *restrict w, T norm, int wbit, int64_t cv) {                 \
  for (int64_t r = r0; r < r1; ++r) {                                                           \
    const int64_t o = r * C;                                                                    \
    for (int64_t j = 0; j < cv; ++j) {                                                          \
      T v = g[o + j] / norm;                                                                    \
      T dy = (code[o + j] & wbit) ? v : (T)0;                                                   \
      dx[o + j] = FMA(-(x[o + j] - mean[j]), k[j], dy - gm[j]) * inv[j] * w[j];                 \
    }                                                                                           \
    for (int64_t j = cv; j < C; ++j) { /* ATen's partial-vector tail: not contracted */         \
      T v = g[o + j] / norm;                                                                    \
      T dy = (code[o + j] & wbit) ? v : (T)0;                                                   \
      dx[o + j] = ((dy - gm[j]) - (x[o + j] - mean[j]) * k[j]) * inv[j] * w[j];                 \
    }                                                                                           \
  }                                                                                             \
}                                                                                               \
BNT_VARIANTS(T, SUF)                                                                            \
int64_t fire_bnt_fwd_##SUF(const T *x, T *out, uint8_t *code, int64_t nrows, int64_t C,         \
                           const T *w, const T *bias, const T *mean, const T *var, double eps,  \
                           T *invstd, double D, double norm, int rmode, int open_w,             \
                           int nthreads) {                                                      \
  T *ab = (T *)malloc(2 * C * sizeof(T));                                                       \
  if (!ab) return -1;                                                                           \
  for (int64_t c = 0; c < C; ++c) { /* ATen's InvStd, in double */                              \
    invstd[c] = (var[c] != (T)0 || eps != 0.0) ? (T)(1.0 / sqrt((double)var[c] + eps)) : (T)0;  \
    ab[c] = invstd[c] * (w ? w[c] : (T)1);                                                      \
    ab[C + c] = FMA(-mean[c], ab[c], bias ? bias[c] : (T)0);                                    \
  }                                                                                             \
  int64_t (*rows)(const T *, T *, uint8_t *, int64_t, int64_t, int64_t, const T *, const T *,  \
                  T, T, int, int) = bntf_v0_##SUF;                                              \
  __builtin_cpu_init();                                                                         \
  if (__builtin_cpu_supports("fma") && __builtin_cpu_supports("avx2")) rows = bntf_v3_##SUF;   \
  int64_t step = C >= CHUNK ? 1 : CHUNK / C;                                                    \
  int64_t nchunks = (nrows + step - 1) / step, bad = 0;                                         \
  PAR_SUM(bad) for (int64_t q = 0; q < nchunks; ++q) {                                          \
    int64_t r0 = q * step, r1 = r0 + step < nrows ? r0 + step : nrows;                          \
    bad += rows(x, out, code, r0, r1, C, ab, ab + C, (T)D, (T)norm, rmode, open_w);             \
  }                                                                                             \
  free(ab);                                                                                     \
  return bad;                                                                                   \
}                                                                                               \
int fire_bnt_bwd_##SUF(const T *g, const uint8_t *code, const T *x, T *dx, int64_t N,           \
                       int64_t C, const T *mean, const T *inv, const T *w, double norm_,        \
                       int wbit, T *gw, T *gb, int64_t cv, int nthreads) {                      \
  const T norm = (T)norm_;                                                                      \
  /* at::parallel_for(0, N, 1, f): one range per thread of ceil(N / min(threads, N)) rows */    \
  const int64_t nt = nthreads > 0 ? nthreads : 1;                                               \
  const int64_t used = (N > 1 && nt > 1) ? (nt < N ? nt : N) : 1;                               \
  const int64_t span = (N + used - 1) / used;                                                   \
  T *buf = (T *)calloc((size_t)(2 * nt + 4) * C, sizeof(T));                                    \
  if (!buf) return -1;                                                                          \
  T *sum = buf + 2 * nt * C, *dotp = sum + C, *k = dotp + C, *gm = k + C;                       \
  void (*srows)(const T *, const uint8_t *, const T *, int64_t, int64_t, int64_t, const T *,   \
                T, int, T *, T *) = bnts_v0_##SUF;                                              \
  void (*drows)(const T *, const uint8_t *, const T *, T *, int64_t, int64_t, int64_t,         \
                const T *, const T *, const T *, const T *, const T *, T, int,                 \
                int64_t) = bntd_v0_##SUF;                                                       \
  __builtin_cpu_init();                                                                         \
  if (__builtin_cpu_supports("fma") && __builtin_cpu_supports("avx2")) {                        \
    srows = bnts_v3_##SUF;                                                                      \
    drows = bntd_v3_##SUF;                                                                      \
  }                                                                                             \
  PRAGMA(omp parallel for num_threads(nthreads) schedule(static, 1) if(used > 1))              \
  for (int64_t t = 0; t < used; ++t) {                                                          \
    int64_t r0 = t * span, r1 = r0 + span < N ? r0 + span : N;                                  \
    if (r0 < r1) srows(g, code, x, r0, r1, C, mean, norm, wbit, buf + t * C,                    \
                       buf + (nt + t) * C);                                                     \
  }                                                                                             \
  for (int64_t c = 0; c < C; ++c) {                                                             \
    double s = 0, d = 0;                                                                        \
    for (int64_t t = 0; t < nt; ++t) s += buf[t * C + c];                                       \
    for (int64_t t = 0; t < nt; ++t) d += buf[(nt + t) * C + c];                                \
    sum[c] = (T)s;                                                                              \
    dotp[c] = (T)d;                                                                             \
    k[c] = dotp[c] * inv[c] * inv[c] / (T)N;                                                    \
    gm[c] = sum[c] / (T)N;                                                                      \
    if (gw) gw[c] = dotp[c] * inv[c];                                                           \
    if (gb) gb[c] = sum[c];                                                                     \
  }                                                                                             \
  if (dx) {                                                                                     \
    T *ones = NULL;                                                                             \
    if (!w) {                                                                                   \
      ones = (T *)malloc(C * sizeof(T));                                                        \
      if (!ones) { free(buf); return -1; }                                                      \
      for (int64_t c = 0; c < C; ++c) ones[c] = (T)1;                                           \
    }                                                                                           \
    int64_t step = C >= CHUNK ? 1 : CHUNK / C;                                                  \
    int64_t nchunks = (N + step - 1) / step;                                                    \
    PAR for (int64_t q = 0; q < nchunks; ++q) {                                                 \
      int64_t r0 = q * step, r1 = r0 + step < N ? r0 + step : N;                                \
      drows(g, code, x, dx, r0, r1, C, mean, k, gm, inv, w ? w : ones, norm, wbit, cv);         \
    }                                                                                           \
    free(ones);                                                                                 \
  }                                                                                             \
  free(buf);                                                                                    \
  return 0;                                                                                     \
}

#define BNT_VARIANT(T, SUF, TAG, ATTR)                                                          \
ATTR static int64_t bntf_##TAG##_##SUF(const T *x, T *out, uint8_t *code, int64_t r0,          \
                                       int64_t r1, int64_t C, const T *a, const T *b, T D,      \
                                       T norm, int rmode, int open_w) {                         \
  return bnt_fwd_rows_##SUF(x, out, code, r0, r1, C, a, b, D, norm, rmode, open_w);             \
}                                                                                               \
ATTR static void bnts_##TAG##_##SUF(const T *g, const uint8_t *code, const T *x, int64_t r0,    \
                                    int64_t r1, int64_t C, const T *mean, T norm, int wbit,     \
                                    T *sum, T *dotp) {                                          \
  if (wbit == 0x80) bnt_sum_rows_##SUF(g, code, x, r0, r1, C, mean, norm, 0x80, sum, dotp);     \
  else bnt_sum_rows_##SUF(g, code, x, r0, r1, C, mean, norm, wbit, sum, dotp);                  \
}                                                                                               \
ATTR static void bntd_##TAG##_##SUF(const T *g, const uint8_t *code, const T *x, T *dx,         \
                                    int64_t r0, int64_t r1, int64_t C, const T *mean,           \
                                    const T *k, const T *gm, const T *inv, const T *w, T norm,  \
                                    int wbit, int64_t cv) {                                     \
  if (wbit == 0x80) bnt_dx_rows_##SUF(g, code, x, dx, r0, r1, C, mean, k, gm, inv, w, norm,    \
                                      0x80, cv);                                                \
  else bnt_dx_rows_##SUF(g, code, x, dx, r0, r1, C, mean, k, gm, inv, w, norm, wbit, cv);       \
}
#define BNT_VARIANTS(T, SUF)                                                                    \
  BNT_VARIANT(T, SUF, v3, __attribute__((target("avx2,fma"))))                                 \
  BNT_VARIANT(T, SUF, v0, )

DEFINE_BNT(float, f32, fmaf)
DEFINE_BNT(double, f64, fma)
'''
# -ffp-contract=off: no FMA contraction, so every operation rounds exactly as in the torch ops.
_C_FLAGS = ['-O3', '-shared', '-fPIC', '-fopenmp', '-fno-math-errno', '-fno-trapping-math',
            '-ffp-contract=off']
_C_SUFFIX = {torch.float32: 'f32', torch.float64: 'f64'}



def _cache_dir() -> str:
    root = os.environ.get('MMSPIKE_KERNEL_CACHE')
    if not root:
        root = os.path.join(os.path.expanduser('~'), '.cache', 'mmspike')
    return os.path.join(root, 'kernels')


def build_c_library(source: str, stem: str, cc: Optional[str] = None) -> ctypes.CDLL:
    """Build C ``source`` into a shared library (cached by the hash of source, compiler, flags
    and platform in :func:`_cache_dir`) and load it with ctypes.

    Args:
        source (str): The C source.
        stem (str): File name stem of the cached library.
        cc (str, optional): Compiler. Defaults to ``$CC`` or ``gcc``.

    Raises:
        RuntimeError: the compiler cannot run or fails (its error output is in the message).
    """
    cc = cc or os.environ.get('CC', 'gcc')
    key = hashlib.sha256('\0'.join([source, cc, *_C_FLAGS, platform.machine(),
                                    sys.platform]).encode()).hexdigest()[:16]
    cache = _cache_dir()
    path = os.path.join(cache, f'{stem}_{key}.so')
    if not os.path.exists(path):
        os.makedirs(cache, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            src = os.path.join(tmp, f'{stem}.c')
            with open(src, 'w') as f:
                f.write(source)
            so = os.path.join(tmp, f'{stem}.so')
            try:
                proc = subprocess.run([cc, *_C_FLAGS, src, '-o', so, '-lm'],
                                      capture_output=True, text=True, timeout=120)
            except OSError as e:
                raise RuntimeError(f'cannot run the C compiler {cc!r}: {e}') from None
            if proc.returncode != 0:
                raise RuntimeError(f'{cc} failed: {proc.stderr.strip()[-1000:]}')
            os.replace(so, path)  # atomic: concurrent builders never see a partial file
    return ctypes.CDLL(path)


class LazyCLibrary:
    """A C library built on first use (:func:`build_c_library`) with its functions' ctypes
    signatures; a failed build (no compiler, read-only cache) warns once and :meth:`get` returns
    None from then on, so the caller keeps its ATen path.

    Args:
        source (str): The C source.
        stem (str): File name stem of the cached library.
        signatures (dict): ``{function: (argtypes, restype)}``.
        fallback (str): What happens instead, for the warning (e.g. ``'ATen computes them'``).
    """

    def __init__(self, source: str, stem: str, signatures: Dict[str, Tuple[list, object]],
                 fallback: str):
        self.source, self.stem, self.signatures, self.fallback = source, stem, signatures, fallback
        self.lib: Optional[ctypes.CDLL] = None
        self.error: Optional[str] = None
        self._lock = threading.Lock()

    def get(self) -> Optional[ctypes.CDLL]:
        with self._lock:
            if self.lib is None and self.error is None:
                try:
                    lib = build_c_library(self.source, self.stem)
                    for name, (argtypes, restype) in self.signatures.items():
                        getattr(lib, name).argtypes = argtypes
                        getattr(lib, name).restype = restype
                    self.lib = lib
                except Exception as e:  # no compiler, read-only cache, ...
                    self.error = f'{type(e).__name__}: {e}'
                    warnings.warn(f'mmspike: the C kernel {self.stem!r} cannot be built '
                                  f'({self.error}); {self.fallback}', stacklevel=3)
            return self.lib


def _cuda_reciprocal(norm: float) -> float:
    """``1 / norm`` as CUDA's ``tensor / scalar`` uses it: PyTorch multiplies by the float32
    reciprocal there (it divides on the CPU), so the Triton kernels do the same."""
    return float(torch.tensor(1.0, dtype=torch.float32) / torch.tensor(norm, dtype=torch.float32))


# ------------------------------------------------------------------------------------ backends
class KernelBackend:
    """One entry of the backend table: kernels writing into preallocated outputs.

    Subclasses set :attr:`name`, implement :meth:`supports`, :meth:`load` (build / import; raise
    on failure) and the three kernels. The table calls :meth:`load` once, runs the probe, and
    only then the kernels; the kernels see dense tensors of one layout and ``n > 0`` elements.
    """

    name = ''

    def supports(self, device: torch.device, dtype: torch.dtype) -> bool:
        raise NotImplementedError

    def load(self) -> None:
        raise NotImplementedError

    def probe_norms(self, device: torch.device) -> Tuple[float, ...]:
        """The ``norm`` values the probe checks (3 is inexact as a reciprocal)."""
        return (1.0, 4.0, 3.0)

    def forward(self, u: Tensor, out: Tensor, code: Optional[Tensor], max_spikes: int,
                norm: float, rounding: int, open_window: bool, full: bool) -> Optional[int]:
        """Fire ``u`` into ``out`` (and ``code``); the number of non-finite elements of ``u``
        when the kernel counts them in the same pass, else None (then it is counted apart)."""
        raise NotImplementedError

    def backward(self, grad: Tensor, code: Tensor, gin: Tensor, norm: float, wbit: int) -> None:
        raise NotImplementedError

    def decode(self, code: Tensor, s: Tensor, norm: float) -> None:
        raise NotImplementedError

    #: Whether :meth:`bn_forward` exists (inference BatchNorm fused into the firing pass).
    fuses_batch_norm = False

    def bn_forward(self, x: Tensor, out: Tensor, bn: 'BNParams', channels_last: bool,
                   max_spikes: int, norm: float, rounding: int) -> int:
        """Fire ``batch_norm(x)`` (inference: running statistics) into ``out`` (4-D, NCHW
        contiguous or channels-last), or write ``batch_norm(x)`` itself when ``rounding`` is
        :data:`BN_ONLY`; the number of non-finite BN outputs."""
        raise NotImplementedError

    #: Whether :meth:`bn_train_forward` / :meth:`bn_train_backward` exist (training BatchNorm).
    fuses_training_batch_norm = False

    def bn_train_forward(self, x: Tensor, out: Tensor, code: Tensor, weight: Optional[Tensor],
                         bias: Optional[Tensor], mean: Tensor, var: Tensor, eps: float,
                         invstd: Tensor, max_spikes: int, norm: float, rounding: int,
                         open_window: bool) -> int:
        """Fire the training-mode ``batch_norm(x)`` (batch ``mean`` / biased ``var``; channels-last
        ``x``) into ``out`` with full code bytes into ``code``; write ``1 / sqrt(var + eps)`` into
        ``invstd``; the number of non-finite BN outputs."""
        raise NotImplementedError

    def bn_train_backward(self, grad: Tensor, code: Tensor, x: Tensor, dx: Optional[Tensor],
                          mean: Tensor, invstd: Tensor, weight: Optional[Tensor], norm: float,
                          grad_weight: Optional[Tensor], grad_bias: Optional[Tensor]) -> None:
        """The gradients of :meth:`bn_train_forward` (``dx`` may be ``grad`` itself)."""
        raise NotImplementedError


class CKernelBackend(KernelBackend):
    """The C kernel (CPU, float32/float64), built with ``cc`` from ``source``.

    Args:
        name (str): Table name. Defaults to ``'c'``.
        source (str): C source defining ``fire_{fwd,bwd,dec}_{f32,f64}``. Defaults to mmspike's.
        cc (str, optional): Compiler. Defaults to ``$CC`` or ``gcc`` (read at :meth:`load`).
    """

    def __init__(self, name: str = 'c', source: str = _C_SOURCE, cc: Optional[str] = None):
        self.name, self.source, self.cc = name, source, cc
        self.lib: Optional[ctypes.CDLL] = None

    def supports(self, device: torch.device, dtype: torch.dtype) -> bool:
        return device.type == 'cpu' and dtype in _C_SUFFIX  # CPU memory only: a device guard

    def load(self) -> None:
        if self.lib is not None:
            return
        lib = build_c_library(self.source, 'fire', self.cc)
        vp, i64, f64, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_double, ctypes.c_int
        for suf in _C_SUFFIX.values():
            getattr(lib, f'fire_fwd_{suf}').argtypes = [vp, vp, vp, i64, f64, f64, i32, i32,
                                                        i32, i32]
            getattr(lib, f'fire_fwd_{suf}').restype = i64
            getattr(lib, f'fire_bwd_{suf}').argtypes = [vp, vp, vp, i64, f64, i32, i32]
            getattr(lib, f'fire_dec_{suf}').argtypes = [vp, vp, i64, f64, i32]
            getattr(lib, f'fire_bn_fwd_{suf}').argtypes = [vp, vp, i64, i64, i64, i32, vp, vp,
                                                           vp, vp, f64, f64, f64, i32, i32]
            getattr(lib, f'fire_bn_fwd_{suf}').restype = i64
            getattr(lib, f'fire_bnt_fwd_{suf}').argtypes = [vp, vp, vp, i64, i64, vp, vp, vp,
                                                            vp, f64, vp, f64, f64, i32, i32,
                                                            i32]
            getattr(lib, f'fire_bnt_fwd_{suf}').restype = i64
            getattr(lib, f'fire_bnt_bwd_{suf}').argtypes = [vp, vp, vp, vp, i64, i64, vp, vp,
                                                            vp, f64, i32, vp, vp, i64, i32]
            getattr(lib, f'fire_bnt_bwd_{suf}').restype = i32
        self.lib = lib

    def forward(self, u, out, code, max_spikes, norm, rounding, open_window, full):
        return int(getattr(self.lib, f'fire_fwd_{_C_SUFFIX[u.dtype]}')(
            u.data_ptr(), out.data_ptr(), None if code is None else code.data_ptr(), u.numel(),
            float(max_spikes), float(norm), rounding, int(open_window), int(full),
            torch.get_num_threads()))

    def backward(self, grad, code, gin, norm, wbit):
        getattr(self.lib, f'fire_bwd_{_C_SUFFIX[grad.dtype]}')(
            grad.data_ptr(), code.data_ptr(), gin.data_ptr(), grad.numel(), float(norm), wbit,
            torch.get_num_threads())

    def decode(self, code, s, norm):
        getattr(self.lib, f'fire_dec_{_C_SUFFIX[s.dtype]}')(
            code.data_ptr(), s.data_ptr(), code.numel(), float(norm), torch.get_num_threads())

    fuses_batch_norm = True

    def bn_forward(self, x, out, bn, channels_last, max_spikes, norm, rounding):
        N, C, H, W = x.shape
        rows, length = (N * H * W, C) if channels_last else (N * C, H * W)
        ptr = lambda t: None if t is None else t.data_ptr()  # noqa: E731
        bad = int(getattr(self.lib, f'fire_bn_fwd_{_C_SUFFIX[x.dtype]}')(
            x.data_ptr(), out.data_ptr(), rows, length, C, int(channels_last), ptr(bn.weight),
            ptr(bn.bias), bn.mean.data_ptr(), bn.var.data_ptr(), float(bn.eps),
            float(max_spikes), float(norm), rounding, torch.get_num_threads()))
        if bad < 0:
            raise MemoryError(f'fire_bn_fwd: no memory for {C} channel coefficients')
        return bad

    fuses_training_batch_norm = True

    def bn_train_forward(self, x, out, code, weight, bias, mean, var, eps, invstd, max_spikes,
                         norm, rounding, open_window):
        ptr = lambda t: None if t is None else t.data_ptr()  # noqa: E731
        C = x.shape[1]
        bad = int(getattr(self.lib, f'fire_bnt_fwd_{_C_SUFFIX[x.dtype]}')(
            x.data_ptr(), out.data_ptr(), code.data_ptr(), x.numel() // C, C, ptr(weight),
            ptr(bias), mean.data_ptr(), var.data_ptr(), float(eps), invstd.data_ptr(),
            float(max_spikes), float(norm), rounding, int(open_window),
            torch.get_num_threads()))
        if bad < 0:
            raise MemoryError(f'fire_bnt_fwd: no memory for {C} channel coefficients')
        return bad

    def bn_train_backward(self, grad, code, x, dx, mean, invstd, weight, norm, grad_weight,
                          grad_bias):
        ptr = lambda t: None if t is None else t.data_ptr()  # noqa: E731
        C = x.shape[1]
        if getattr(self.lib, f'fire_bnt_bwd_{_C_SUFFIX[x.dtype]}')(
                grad.data_ptr(), code.data_ptr(), x.data_ptr(), ptr(dx), x.numel() // C, C,
                mean.data_ptr(), invstd.data_ptr(), ptr(weight), float(norm), WINDOW_BIT,
                ptr(grad_weight), ptr(grad_bias), C - C % _aten_bn_lanes(x.dtype),
                torch.get_num_threads()):
            raise MemoryError(f'fire_bnt_bwd: no memory for {C} channel sums')


_TRITON_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_TRITON_BLOCK = 1024


class TritonKernelBackend(KernelBackend):
    """The Triton kernels (:mod:`.triton_kernels`; CUDA, float32/float16/bfloat16)."""

    name = 'triton'

    def __init__(self) -> None:
        self.tk = None

    def supports(self, device: torch.device, dtype: torch.dtype) -> bool:
        if dtype not in _TRITON_DTYPES:
            return False
        # The interpreter (TRITON_INTERPRET=1, set before Triton is imported) runs the kernels on
        # CPU tensors: that is how the tests check them on a machine without a GPU.
        return device.type == 'cuda' or (device.type == 'cpu'
                                         and os.environ.get('TRITON_INTERPRET') == '1')

    def load(self) -> None:
        if self.tk is None:
            from . import triton_kernels  # imports Triton (optional dependency)
            self.tk = triton_kernels

    def probe_norms(self, device: torch.device) -> Tuple[float, ...]:
        # On CPU tensors (interpreter) the kernels keep CUDA's reciprocal, which the CPU torch
        # ops do not use: only the norms whose reciprocal is exact can match there.
        return (1.0, 4.0, 3.0) if device.type == 'cuda' else (1.0, 4.0)

    @staticmethod
    def _launch(kernel, tensors: tuple, scalars: tuple, **constexprs) -> None:
        n = tensors[0].numel()
        grid = ((n + _TRITON_BLOCK - 1) // _TRITON_BLOCK, )
        device = tensors[0].device
        if device.type == 'cuda':
            with torch.cuda.device(device):  # device guard: launch where the data is
                kernel[grid](*tensors, n, *scalars, **constexprs, BLOCK=_TRITON_BLOCK)
        else:
            kernel[grid](*tensors, n, *scalars, **constexprs, BLOCK=_TRITON_BLOCK)

    def forward(self, u, out, code, max_spikes, norm, rounding, open_window, full):
        kind = 0 if code is None else (1 if full else 2)
        buf = out if code is None else code.view(torch.uint8)
        self._launch(self.tk.fire_fwd, (u, out, buf),
                     (float(max_spikes), _cuda_reciprocal(norm)), RMODE=rounding,
                     OPEN=bool(open_window), CODE=kind)

    def backward(self, grad, code, gin, norm, wbit):
        self._launch(self.tk.fire_bwd, (grad, code.view(torch.uint8), gin),
                     (_cuda_reciprocal(norm), ), WBIT=wbit)

    def decode(self, code, s, norm):
        self._launch(self.tk.fire_dec, (code, s), (_cuda_reciprocal(norm), ))


# ------------------------------------------------------------------------------- torch ops
def _torch_forward(u: Tensor, max_spikes: int, norm: float, rounding: int, open_window: bool,
                   code: Optional[str]) -> Tuple[Tensor, Optional[Tensor]]:
    r = round_to_int(u.clamp(0, max_spikes), rounding)
    out = r / norm if norm != 1.0 else r
    if code is None:
        return out, None
    window = ~((u <= 0) | (u >= max_spikes)) if open_window else \
        ~((u < 0) | (u > max_spikes))
    if code == 'window':
        return out, window
    return out, torch.nan_to_num(r, nan=0.0).to(torch.uint8) | (window.to(torch.uint8) << 7)


def _torch_backward(grad: Tensor, code: Tensor, norm: float, inplace: bool) -> Tensor:
    window = code if code.dtype == torch.bool else code >= WINDOW_BIT
    if inplace:
        if norm != 1.0:
            grad.div_(norm)
        return grad.masked_fill_(~window, 0)
    g = grad / norm if norm != 1.0 else grad
    return torch.where(window, g, torch.zeros((), dtype=g.dtype, device=g.device))


def _torch_decode(code: Tensor, norm: float, dtype: torch.dtype) -> Tensor:
    s = (code & COUNT_BITS).to(dtype)
    return s / norm if norm != 1.0 else s


# ------------------------------------------------------------------------------- the table
#: Boundary values of the probe (D = 4): 0, -0.0, D, ties, just below a tie, out of range, NaN, +-Inf.
_PROBE_SPECIAL = [-1.0, -0.0, 0.0, 0.25, 0.5, 1.0, 1.5, 2.5, 3.5, 3.9999, 4.0, 4.5, 10.0,
                  0.49999997, float('nan'), float('inf'), float('-inf')]
_PROBE_D = 4
ENV_DISABLE = 'MMSPIKE_KERNELS_DISABLE'
ENV_BACKEND = 'MMSPIKE_KERNEL_BACKEND'


def _exact(a: Tensor, b: Tensor) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and bool(
        ((a == b) | (torch.isnan(a) & torch.isnan(b)) if a.is_floating_point()
         else a == b).all())


class _BackendTable:
    """The ordered backends, what the environment forbids or forces (read once, here), and the
    probe results; thread-safe."""

    def __init__(self, backends: Sequence[KernelBackend]) -> None:
        self.backends: Dict[str, KernelBackend] = {}
        for b in backends:
            self.add(b)
        disable = [n.strip() for n in os.environ.get(ENV_DISABLE, '').split(',') if n.strip()]
        if os.environ.get('MMSPIKE_CPU_KERNEL', '1') == '0':
            disable.append('c')
        for n in disable:
            if n not in self.backends:
                raise ValueError(f'{ENV_DISABLE} names {n!r}, not a kernel backend; '
                                 f'backends: {list(self.backends)}')
        self.disabled = set(disable)
        default = os.environ.get(ENV_BACKEND, 'auto')
        if default != 'auto' and default not in self.names():
            raise ValueError(f'{ENV_BACKEND} must be auto or one of {self.names()}, '
                             f'got {default!r}')
        self.default = default
        self.lock = threading.RLock()
        self.failed: Dict[Tuple[str, torch.device, torch.dtype], str] = {}
        self.passed: set = set()
        self.resolved: Dict[tuple, str] = {}
        self.load_errors: Dict[str, str] = {}
        #: (backend, device, dtype, rounding) -> None (its fused BN matches ATen's) or the cause
        self.bn_probed: Dict[tuple, Optional[str]] = {}

    def add(self, backend: KernelBackend, first: bool = False) -> None:
        if not backend.name or backend.name in ('auto', 'torch'):
            raise ValueError(f'a kernel backend needs a name other than auto/torch, '
                             f'got {backend.name!r}')
        if backend.name in getattr(self, 'backends', {}):
            raise ValueError(f'kernel backend {backend.name!r} is already registered')
        items = list(self.backends.items())
        entry = (backend.name, backend)
        self.backends = dict([entry] + items if first else items + [entry])
        if hasattr(self, 'resolved'):
            self.resolved.clear()

    def names(self) -> List[str]:
        return [*self.backends, 'torch']

    def check_name(self, name: str) -> str:
        if name != 'auto' and name not in self.backends and name != 'torch':
            raise ValueError(f"kernel backend must be 'auto' or one of {self.names()}, "
                             f'got {name!r}')
        return name

    def resolve(self, requested: str, device: torch.device, dtype: torch.dtype,
                op: tuple) -> str:
        key = (requested, device, dtype, op)
        name = self.resolved.get(key)
        if name is not None:
            return name
        self.check_name(requested)
        with self.lock:
            if requested == 'auto':
                requested = self.default
            order = list(self.backends)
            if requested in self.backends:  # a named backend first, then the automatic order
                order.remove(requested)
                order.insert(0, requested)
            failures: list = []
            name = 'torch'
            # A CUDA graph being captured cannot run the probe (it synchronises): torch ops for
            # this call, the probe on the next call outside the capture.
            capturing = device.type == 'cuda' and torch.cuda.is_current_stream_capturing()
            if requested != 'torch':
                for n in order:
                    b = self.backends[n]
                    if capturing and (n, device, dtype, op) not in self.passed:
                        continue
                    if self._usable(b, device, dtype, op, failures):
                        name = n
                        break
            for n, cause in failures:  # each (backend, device, dtype) fails (and warns) once
                warnings.warn(f'mmspike: the {n!r} neuron kernel backend fails on {device} '
                              f'{dtype} ({cause}); using {name!r} ops instead there',
                              stacklevel=4)
            if not capturing:
                self.resolved[key] = name
        return name

    def _usable(self, b: KernelBackend, device, dtype, op, failures) -> bool:
        if b.name in self.disabled or not b.supports(device, dtype):
            return False
        fkey = (b.name, device, dtype)
        if fkey in self.failed:
            return False
        if (b.name, device, dtype, op) in self.passed:
            return True
        cause = self.load_errors.get(b.name)
        if cause is None:
            try:
                b.load()
            except Exception as e:  # no compiler, no Triton, read-only cache, ...
                cause = self.load_errors[b.name] = f'build failed: {type(e).__name__}: {e}'
        if cause is None:
            try:
                cause = _probe(b, device, dtype, op)
            except Exception as e:  # compile or launch error
                cause = f'kernel error: {type(e).__name__}: {str(e)[-1000:]}'
        if cause is not None:
            self.failed[fkey] = cause
            failures.append((b.name, cause))
            self.resolved.clear()  # other kernel variants resolved to it before: not any more
            return False
        self.passed.add((b.name, device, dtype, op))
        return True


def _probe(b: KernelBackend, device: torch.device, dtype: torch.dtype, op: tuple
           ) -> Optional[str]:
    """Run kernel variant ``op`` of ``b`` on a small tensor against the torch ops; the cause of
    the first mismatch, or None."""
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.tensor(_PROBE_SPECIAL, dtype=torch.float64),
                   torch.randn(300, generator=g, dtype=torch.float64) * 3]).to(dtype)
    x = torch.cat([x, torch.nextafter(x, torch.full_like(x, 10.0))]).to(device)
    grad = (torch.randn(x.shape, generator=g, dtype=torch.float64) * 2).to(dtype).to(device)
    D = _PROBE_D
    with torch.no_grad():
        for norm in b.probe_norms(device):
            if op[0] == 'fwd':
                rounding, open_window, code = op[1:]
                out, buf = torch.empty_like(x), None
                if code is not None:
                    buf = torch.empty_like(x, dtype=torch.bool if code == 'window'
                                           else torch.uint8)
                bad = b.forward(x, out, buf, D, norm, rounding, open_window, code == 'full')
                ref, ref_buf = _torch_forward(x, D, norm, rounding, open_window, code)
                if bad is not None and bad != count_nonfinite(x):
                    return f'non-finite count {bad} of the forward, expected {count_nonfinite(x)}'
                if not _exact(out, ref):
                    return (f'forward (rounding {rounding}, open window {open_window}, '
                            f'norm {norm}) differs from the torch ops')
                if code is not None and not _exact(buf, ref_buf):
                    return f'{code} code of the forward (norm {norm}) differs from the torch ops'
            elif op[0] == 'bwd':
                ref_code = _torch_forward(x, D, 1.0, 1, False, 'full')[1]
                code = ref_code if op[1] == WINDOW_BIT else ref_code >= WINDOW_BIT
                ref = _torch_backward(grad, code, norm, inplace=False)
                gin = torch.empty_like(grad)
                b.backward(grad, code, gin, norm, op[1])
                g2 = grad.clone()
                b.backward(g2, code, g2, norm, op[1])  # in place
                if not (_exact(gin, ref) and _exact(g2, ref)):
                    return f'backward (norm {norm}) differs from the torch ops'
            else:
                code = _torch_forward(x, D, 1.0, 1, False, 'full')[1]
                s = torch.empty_like(code, dtype=dtype)
                b.decode(code, s, norm)
                if not _exact(s, _torch_decode(code, norm, dtype)):
                    return f'decoded spikes (norm {norm}) differ from the torch ops'
        if device.type == 'cuda':
            torch.cuda.synchronize(device)  # surface asynchronous launch errors here
    return None


def _probe_bn(b: KernelBackend, device: torch.device, dtype: torch.dtype,
              rounding: int) -> Optional[str]:
    """Fused inference BN + firing of ``b`` against ``F.batch_norm`` then the torch ops, on
    both layouts, with and without affine parameters; the cause of a mismatch, or None. (It
    fails where ATen's batch norm does not round as ``fma(x, alpha, beta)``, e.g. a build or
    ``ATEN_CPU_CAPABILITY`` without FMA.)"""
    g = torch.Generator().manual_seed(0)
    C = 37  # not a multiple of any vector width: the tails run too

    def rnd(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).to(dtype)

    x = rnd(3, C, 5, 7, scale=3.0)
    flat = x.view(-1)
    flat[:len(_PROBE_SPECIAL)] = torch.tensor(_PROBE_SPECIAL, dtype=dtype)
    var = (torch.rand(C, generator=g, dtype=torch.float64) * 4).to(dtype)
    var[0] = 0.0
    with torch.no_grad():
        for affine in (True, False):
            bn = BNParams(rnd(C) if affine else None, rnd(C) if affine else None, rnd(C), var,
                          1e-5)
            ref = torch.nn.functional.batch_norm(x, bn.mean, bn.var, bn.weight, bn.bias,
                                                 False, 0.0, bn.eps)
            bn_dev = BNParams(*(None if t is None else t.to(device) for t in bn[:4]), bn.eps)
            for cl in (False, True):
                xi = x.contiguous(memory_format=torch.channels_last) if cl else x
                xi = xi.to(device)
                # BN_ONLY first: a last-bit difference of the BN value rarely changes a spike
                for norm, rmode in [(1.0, BN_ONLY)] + [(n, rounding)
                                                       for n in b.probe_norms(device)]:
                    out = torch.empty_like(xi)
                    bad = b.bn_forward(xi, out, bn_dev, cl, _PROBE_D, norm, rmode)
                    expected = ref.to(device) if rmode == BN_ONLY else _torch_forward(
                        ref.to(device), _PROBE_D, norm, rounding, False, None)[0]
                    what = 'batch norm' if rmode == BN_ONLY else f'batch norm + firing (norm {norm})'
                    if bad != count_nonfinite(ref) or not _exact(out, expected):
                        return (f'{what} (affine {affine}, channels-last {cl}) differs from '
                                f'F.batch_norm' + ('' if rmode == BN_ONLY else
                                                   ' then the torch ops'))
    return None


def _probe_bn_train(b: KernelBackend, device: torch.device, dtype: torch.dtype, rounding: int,
                    open_window: bool) -> Optional[str]:
    """Fused training BN + firing of ``b`` and its backward against ``F.batch_norm(training=True)``
    then the torch ops and autograd's gradients, channels-last (37 channels: ATen's partial
    vectors run too), with and without affine parameters, at this thread count; the cause of
    a mismatch, or None."""
    g = torch.Generator().manual_seed(0)
    C, shape = 37, (3, 37, 5, 7)

    def rnd(*size, scale=1.0, shift=0.0):
        t = torch.randn(*size, generator=g, dtype=torch.float64) * scale + shift
        return t.to(dtype).to(device)

    cl = torch.channels_last
    with torch.inference_mode(False), torch.enable_grad():
        x = rnd(*shape, scale=3.0, shift=1.0).contiguous(memory_format=cl)
        grad = rnd(*shape, scale=2.0).contiguous(memory_format=cl)
        for affine in (True, False):
            w, bias = (rnd(C), rnd(C)) if affine else (None, None)
            leaves = [t.clone().requires_grad_() for t in (x, w, bias) if t is not None]
            y = torch.nn.functional.batch_norm(leaves[0], None, None, *(leaves[1:] or [None] * 2),
                                               True, 0.1, 1e-5)
            for norm in b.probe_norms(device):
                ref, ref_code = _torch_forward(y.detach(), _PROBE_D, norm, rounding, open_window,
                                               'full')
                refs = torch.autograd.grad(y, leaves, _torch_backward(grad, ref_code, norm, False),
                                           retain_graph=True)
                mean, var = torch.batch_norm_update_stats(x, None, None, 0.1)
                out, code = torch.empty_like(x), torch.empty_like(x, dtype=torch.uint8)
                invstd = torch.empty_like(mean)
                bad = b.bn_train_forward(x, out, code, w, bias, mean, var, 1e-5, invstd, _PROBE_D,
                                         norm, rounding, open_window)
                what = f'(affine {affine}, norm {norm})'
                if (bad != count_nonfinite(y) or not _exact(out, ref)
                        or not _exact(code, ref_code)):
                    return f'training batch norm + firing {what} differs from F.batch_norm ' \
                           f'then the torch ops'
                dx = grad.clone()  # in place, as the fused layers run it
                gw, gb = (torch.empty_like(mean), torch.empty_like(mean)) if affine else (None, )*2
                b.bn_train_backward(dx, code, x, dx, mean, invstd, w, norm, gw, gb)
                got = [dx] + ([gw, gb] if affine else [])
                if not all(_exact(a, r) for a, r in zip(got, refs)):
                    return f'training batch norm + firing backward {what} differs from autograd'
    return None


def _default_backends() -> List[KernelBackend]:
    return [CKernelBackend(), TritonKernelBackend()]


_TABLE: Optional[_BackendTable] = None
_TABLE_LOCK = threading.Lock()


def _table() -> _BackendTable:
    table = _TABLE
    if table is None:
        table = rebuild_backend_table(_only_if_missing=True)
    return table


def rebuild_backend_table(_only_if_missing: bool = False) -> _BackendTable:
    """Build the backend table afresh: default backends, the environment variables read now,
    no probe results. Done automatically on first use; call it after changing the environment
    (tests). Backends added by :func:`register_backend` are dropped."""
    global _TABLE
    with _TABLE_LOCK:
        if not (_only_if_missing and _TABLE is not None):
            _TABLE = _BackendTable(_default_backends())
        return _TABLE


def register_backend(backend: KernelBackend, first: bool = False) -> None:
    """Add a backend to the table (after the built-in ones, or before them with ``first``); it
    goes through the same probe. For tests and experimental kernels."""
    table = _table()
    with table.lock:
        table.add(backend, first=first)


def unregister_backend(name: str) -> None:
    """Remove a backend added by :func:`register_backend` (and its probe results)."""
    table = _table()
    with table.lock:
        if name not in table.backends:
            raise ValueError(f'no kernel backend {name!r}; backends: {list(table.backends)}')
        del table.backends[name]
        table.failed = {k: v for k, v in table.failed.items() if k[0] != name}
        table.passed = {k for k in table.passed if k[0] != name}
        table.bn_probed = {k: v for k, v in table.bn_probed.items() if k[0] != name}
        table.load_errors.pop(name, None)
        table.resolved.clear()


def backend_names() -> List[str]:
    """The names a module's ``kernel_backend`` may hold besides ``'auto'``, in table order."""
    return _table().names()


def check_backend_name(name: str) -> str:
    """``name`` if it is ``'auto'`` or a backend of the table, else ``ValueError``."""
    return _table().check_name(name)


def backend_failures() -> Dict[Tuple[str, torch.device, torch.dtype], str]:
    """The (backend, device, dtype) combinations that failed their probe, with the cause."""
    return dict(_table().failed)


# ------------------------------------------------------------------------------------- helpers
def _is_dense(t: Tensor) -> bool:
    """Whether ``t`` covers one gap-free block of memory (contiguous in some dim order).

    Then an elementwise kernel can run over the block and write outputs created with
    ``torch.empty_like`` (which keeps the strides of such a tensor, e.g. channels-last).
    """
    if t.is_contiguous():
        return True
    expected = 1
    for stride, size in sorted((st, sz) for sz, st in zip(t.shape, t.stride()) if sz != 1):
        if stride != expected:
            return False
        expected *= size
    return True


def _same_layout(a: Tensor, b: Tensor) -> bool:
    return a.shape == b.shape and all(
        sa == sb for sa, sb, n in zip(a.stride(), b.stride(), a.shape) if n != 1)


def _tracing() -> bool:
    """Tracers and compilers (``torch.jit.trace``, ONNX export, ``torch.compile``) cannot see
    through a raw kernel call: they get the torch ops."""
    return torch.jit.is_tracing() or torch.compiler.is_compiling()


_FWD_ANY = ('fwd', 1, False, 'full')


def fire_backend(t: Tensor, dtype: Optional[torch.dtype] = None, backend: str = 'auto',
                 op: tuple = _FWD_ANY) -> str:
    """The backend that fires a tensor like ``t`` (or a ``dtype`` tensor on ``t``'s device) when
    ``backend`` is requested: ``'c'``, ``'triton'``, ``'torch'`` (or a registered name). Runs the
    probe of kernel variant ``op`` (default: the half-up forward with code bytes) on first use."""
    if _tracing():
        return 'torch'
    return _table().resolve(backend, t.device, t.dtype if dtype is None else dtype, op)


CODE_KINDS = (None, 'full', 'window')


#: ``rounding`` value of :meth:`KernelBackend.bn_forward` that writes the BN output unfired
#: (the probe compares it bit for bit with ``F.batch_norm``).
BN_ONLY = 3


class BNParams(NamedTuple):
    """What an inference-mode ``BatchNorm2d`` applies: optional affine ``weight`` / ``bias``,
    the running ``mean`` / ``var`` and ``eps``."""
    weight: Optional[Tensor]
    bias: Optional[Tensor]
    mean: Tensor
    var: Tensor
    eps: float


def _aten_bn_lanes(dtype: torch.dtype) -> int:
    """Elements per vector of ATen's CPU batch norm kernels (its partial last vector rounds
    apart). They are registered without an AVX-512 build: 256-bit vectors on AVX-512 too."""
    return 32 // dtype.itemsize


def _bn_backend(x: Tensor, backend: str, rounding: int,
                train_window: Optional[bool] = None) -> Optional[KernelBackend]:
    """The backend that fires ``x`` if it fuses BN and its fused BN passed its probe here; else
    None (one warning per backend, device, dtype and variant). Inference BN (running
    statistics) when ``train_window`` is None; else training BN firing with code bytes, the
    open window when ``train_window`` is True."""
    train = train_window is not None
    name = fire_backend(x, backend=backend,
                        op=('fwd', rounding, bool(train_window), 'full' if train else None))
    table = _table()
    b = table.backends.get(name)
    if b is None or not (b.fuses_training_batch_norm if train else b.fuses_batch_norm):
        return None
    key = (name, x.device, x.dtype, rounding) + (('train', bool(train_window)) if train else ())
    if key not in table.bn_probed:
        with table.lock:
            if key not in table.bn_probed:
                try:
                    cause = _probe_bn_train(b, x.device, x.dtype, rounding, bool(train_window)) \
                        if train else _probe_bn(b, x.device, x.dtype, rounding)
                except Exception as e:
                    cause = f'kernel error: {type(e).__name__}: {str(e)[-1000:]}'
                table.bn_probed[key] = cause
                if cause is not None:
                    what = 'training' if train else 'inference'
                    warnings.warn(f'mmspike: the {name!r} backend cannot fuse {what} batch norm '
                                  f'into the firing pass on {x.device} {x.dtype} ({cause}); '
                                  f'batch norm runs as its own op there', stacklevel=4)
    return b if table.bn_probed[key] is None else None


# ------------------------------------------------------------------------------------- kernels
def count_nonfinite(x: Tensor) -> int:
    """The number of NaN / +-Inf elements of ``x`` (0 for non-float tensors), in one reduction
    when there are none: a NaN or an infinity anywhere makes the sum non-finite, and a finite
    sum that overflows is told apart by an exact count."""
    if not x.is_floating_point():
        return 0
    x = x.detach()
    total = x.sum(dtype=torch.float64 if x.dtype == torch.float64 else torch.float32)
    if bool(torch.isfinite(total)):
        return 0
    return int((~torch.isfinite(x)).sum())


def fire_forward(u: Tensor, max_spikes: int, norm: float, rounding: int = 1,
                 open_window: bool = False, code: Optional[str] = 'full',
                 backend: str = 'auto',
                 on_nonfinite: Optional[Callable[[Tensor, int], None]] = None
                 ) -> Tuple[Tensor, Optional[Tensor]]:
    """``round(clamp(u, 0, D)) / norm`` in one pass, plus what backward needs.

    Args:
        u (Tensor): Membrane potential (any shape; a dense non-contiguous layout such as
            channels-last is kept).
        max_spikes (int): D (at most :data:`MAX_CODED_SPIKES` for ``code='full'``).
        norm (float): Output divisor.
        rounding (int | bool): 1 (True): round half up exactly; 0 (False): half to even;
            2: ``floor(c + 0.5)`` with the sum rounded in ``u``'s dtype (upstream's large
            family). Defaults to 1.
        open_window (bool): Window ``0 < u < D`` (else ``0 <= u <= D``). Defaults to False.
        code (str, optional): ``'full'``: ``uint8`` code bytes (count and window bit);
            ``'window'``: a ``bool`` window mask; None: nothing (inference).
            Defaults to ``'full'``.
        backend (str): ``'auto'`` or a backend name (see the module docstring). Defaults to
            ``'auto'``.
        on_nonfinite (callable, optional): Called as ``on_nonfinite(u, n)`` when ``u`` holds
            ``n > 0`` NaN / +-Inf elements (a neuron's check raises there). The C kernel counts
            them in its firing pass; other backends count them with :func:`count_nonfinite`.
            Defaults to None: not checked.

    Returns:
        tuple[Tensor, Tensor | None]: spikes (``u``'s dtype and layout) and the code.
    """
    if code not in CODE_KINDS:
        raise ValueError(f'code must be one of {CODE_KINDS}, got {code!r}')
    rounding = int(rounding)
    if rounding not in (0, 1, 2):
        raise ValueError(f'rounding must be 0 (half even), 1 (half up) or 2 (floor(u + 0.5)), '
                         f'got {rounding}')
    if code == 'full' and max_spikes > MAX_CODED_SPIKES:
        raise ValueError(f'code bytes hold spike counts up to {MAX_CODED_SPIKES}, '
                         f'got max_spikes={max_spikes}')
    open_window = bool(open_window)
    if not _is_dense(u):
        u = u.contiguous()
    name = fire_backend(u, backend=backend, op=('fwd', rounding, open_window, code))
    bad = None
    if name == 'torch':
        out, buf = _torch_forward(u, max_spikes, norm, rounding, open_window, code)
    else:
        out = torch.empty_like(u)
        buf = torch.empty_like(u, dtype=torch.bool if code == 'window' else torch.uint8) \
            if code else None
        if u.numel():
            bad = _table().backends[name].forward(u, out, buf, max_spikes, norm, rounding,
                                                  open_window, code == 'full')
    if on_nonfinite is not None:
        bad = count_nonfinite(u) if bad is None else bad
        if bad:
            on_nonfinite(u, bad)
    return out, buf


def _bn_param_ok(x: Tensor, t: Optional[Tensor]) -> bool:
    """Whether BN parameter ``t`` (or None) fits ``x``: its dtype and device, one contiguous
    value per channel."""
    return t is None or (t.dtype == x.dtype and t.device == x.device and t.dim() == 1
                         and t.numel() == x.shape[1] and t.is_contiguous())


def fire_bn_forward(x: Tensor, bn: BNParams, max_spikes: int, norm: float, rounding: int = 1,
                    backend: str = 'auto',
                    on_nonfinite: Optional[Callable[[Tensor, int], None]] = None,
                    out: Optional[Tensor] = None) -> Optional[Tensor]:
    """``round(clamp(batch_norm(x), 0, D)) / norm`` with an inference-mode batch norm (running
    statistics), in one pass, bit-identical to ``F.batch_norm(x, ..., training=False)`` then
    :func:`fire_forward`; no code bytes (nothing for a backward).

    Args:
        x (Tensor): ``[N, C, H, W]`` BN input, NCHW-contiguous or channels-last.
        bn (BNParams): The batch norm's parameters (``x``'s dtype and device).
        max_spikes, norm, rounding, backend, on_nonfinite: As :func:`fire_forward`;
            ``on_nonfinite`` sees the BN output's non-finite count (the neuron's input).
        out (Tensor, optional): Where the spikes go: ``x`` itself (each element is read before
            it is overwritten; saves allocating, and first touching, a tensor of ``x``'s size)
            or a tensor of ``x``'s shape, dtype, device and strides. Defaults to None: a new
            tensor.

    Returns:
        Tensor | None: the spikes (``x``'s layout; ``out`` when given), or None where no backend
        fuses this (another layout, dtype or device, the torch ops, a failed probe): then
        nothing was written, and the caller runs the batch norm and :func:`fire_forward`.
    """
    if out is not None and (out.shape != x.shape or out.dtype != x.dtype
                            or out.device != x.device or out.stride() != x.stride()):
        raise ValueError(f'fire_bn_forward: out must have the shape, dtype, device and strides '
                         f'of x ({tuple(x.shape)}, {x.dtype}, {x.device}, {x.stride()}), got '
                         f'{tuple(out.shape)}, {out.dtype}, {out.device}, {out.stride()}')
    if x.dim() != 4 or not x.is_floating_point() or _tracing():
        return None
    if not all(_bn_param_ok(x, t) for t in bn[:4]):
        return None
    if x.is_contiguous():
        channels_last = False
    elif x.is_contiguous(memory_format=torch.channels_last):
        channels_last = True
    else:
        return None
    rounding = int(rounding)
    b = _bn_backend(x, backend, rounding)
    if b is None:
        return None
    out = torch.empty_like(x) if out is None else out
    if x.numel():
        bad = b.bn_forward(x, out, bn, channels_last, max_spikes, norm, rounding)
        if bad and on_nonfinite is not None:
            on_nonfinite(x, bad)
    return out


def _fuses_training_bn(x: Tensor) -> bool:
    """Whether ``x`` has the layout of ATen's channels-last batch norm backward, which the
    training kernels follow: 4-D channels-last, and not also NCHW-contiguous unless its maps
    are 1x1 (ATen takes its per-channel path for the others)."""
    return (x.dim() == 4 and x.is_floating_point() and x.numel() > 0 and not _tracing()
            and x.is_contiguous(memory_format=torch.channels_last)
            and (not x.is_contiguous() or x.shape[2] * x.shape[3] == 1))


def _training_bn_backend(x: Tensor, params: Sequence[Optional[Tensor]], max_spikes: int,
                         rounding: int, open_window: bool, backend: str
                         ) -> Optional[KernelBackend]:
    if not _fuses_training_bn(x) or max_spikes > MAX_CODED_SPIKES:
        return None
    if not all(_bn_param_ok(x, t) for t in params) or (params[2] is None) != (params[3] is None):
        return None
    return _bn_backend(x, backend, int(rounding), train_window=bool(open_window))


def fuses_training_bn(x: Tensor, weight: Optional[Tensor], bias: Optional[Tensor],
                      running_mean: Optional[Tensor], running_var: Optional[Tensor],
                      max_spikes: int, rounding: int = 1, open_window: bool = False,
                      backend: str = 'auto') -> bool:
    """Whether :func:`fire_bn_train_forward` runs on these arguments (else it returns None)."""
    return _training_bn_backend(x, (weight, bias, running_mean, running_var), max_spikes,
                                rounding, open_window, backend) is not None


def fire_bn_train_forward(x: Tensor, weight: Optional[Tensor], bias: Optional[Tensor],
                          running_mean: Optional[Tensor], running_var: Optional[Tensor],
                          momentum: float, eps: float, max_spikes: int, norm: float,
                          rounding: int = 1, open_window: bool = False, backend: str = 'auto',
                          on_nonfinite: Optional[Callable[[Tensor, int], None]] = None
                          ) -> Optional[Tuple[Tensor, Tensor, Tensor, Tensor]]:
    """``fire_forward(batch_norm(x, training=True), code='full')`` with the normalisation inside
    the firing pass, bit-identical to ``F.batch_norm`` then :func:`fire_forward`.

    ATen computes the batch statistics (``torch.batch_norm_update_stats``: the pass and
    roundings of its training batch norm, the running statistics updated with ``momentum`` as
    it updates them); the C kernel normalises and fires in one pass (see the C source).

    Args:
        x (Tensor): ``[N, C, H, W]`` channels-last BN input.
        weight, bias (Tensor, optional): The affine parameters (``x``'s dtype and device).
        running_mean, running_var (Tensor, optional): Updated in place when given.
        momentum (float): Running-statistics factor (what ``F.batch_norm`` gets).
        eps (float): Added to the variance.
        max_spikes, norm, rounding, open_window, backend: As :func:`fire_forward`.
        on_nonfinite (callable, optional): As :func:`fire_forward`, with the BN output's
            non-finite count.

    Returns:
        tuple[Tensor] | None: spikes, code bytes, batch mean and ``1 / sqrt(var + eps)`` (what
        :func:`fire_bn_train_backward` takes), or None where nothing fuses this (another layout,
        dtype or device, the torch ops, a failed probe); then nothing ran, the running
        statistics are untouched, and the caller runs the batch norm and the neuron.
    """
    rounding = int(rounding)
    b = _training_bn_backend(x, (weight, bias, running_mean, running_var), max_spikes, rounding,
                             open_window, backend)
    if b is None:
        return None
    mean, var = torch.batch_norm_update_stats(x, running_mean, running_var, momentum)
    out, code = torch.empty_like(x), torch.empty_like(x, dtype=torch.uint8)
    invstd = torch.empty_like(mean)
    bad = b.bn_train_forward(x, out, code, weight, bias, mean, var, eps, invstd, max_spikes,
                             norm, rounding, bool(open_window))
    if bad and on_nonfinite is not None:
        on_nonfinite(x, bad)
    return out, code, mean, invstd


def fire_bn_train_backward(grad: Tensor, code: Tensor, x: Tensor, mean: Tensor, invstd: Tensor,
                           weight: Optional[Tensor], norm: float, eps: float,
                           output_mask: Sequence[bool], rounding: int = 1,
                           open_window: bool = False, inplace: bool = False,
                           backend: str = 'auto'
                           ) -> Tuple[Optional[Tensor], Optional[Tensor], Optional[Tensor]]:
    """The gradients of :func:`fire_bn_train_forward` (``x``, ``weight``, ``bias``, as
    ``output_mask`` asks) for the spikes' gradient ``grad``: the neuron's backward and ATen's
    channels-last batch norm backward in one kernel, the neuron's gradient never stored;
    bit-identical to :func:`fire_backward` then ``aten.native_batch_norm_backward``, which run
    instead where the kernel does not apply (``grad`` in another layout, another backend).
    ``rounding`` / ``open_window`` name the forward's variant (its probe); ``inplace`` lets the
    input gradient overwrite ``grad``."""
    mask = [bool(m) for m in output_mask]
    b = None
    if _fuses_training_bn(x) and grad.dtype == x.dtype and grad.stride() == x.stride():
        b = _bn_backend(x, backend, int(rounding), train_window=bool(open_window))
    if b is None:
        dy = fire_backward(grad, code, norm, inplace=inplace, backend=backend)
        return tuple(torch.ops.aten.native_batch_norm_backward(
            dy, x, weight, None, None, mean, invstd, True, eps, mask))
    dx = (grad if inplace else torch.empty_like(x)) if mask[0] else None
    gw = torch.empty_like(mean) if mask[1] and weight is not None else None
    gb = torch.empty_like(mean) if mask[2] else None
    b.bn_train_backward(grad, code, x, dx, mean, invstd, weight, norm, gw, gb)
    return dx, gw, gb


def fire_backward(grad: Tensor, code: Tensor, norm: float, inplace: bool = False,
                  backend: str = 'auto') -> Tensor:
    """``grad / norm`` inside the window recorded in ``code`` (code bytes or a bool window
    mask from :func:`fire_forward`), 0 outside; one pass. ``inplace`` writes the result into
    ``grad`` when its layout allows (only for a gradient the caller owns)."""
    # The result takes the gradient's layout (as the plain path's ``grad.clone()`` does), so the
    # next backward kernels see the same layouts on both paths; the code bytes follow it.
    if not _is_dense(grad):
        grad, inplace = grad.contiguous(), True
    if not _same_layout(grad, code):
        code = torch.empty_like(grad, dtype=code.dtype).copy_(code)
    wbit = 1 if code.dtype == torch.bool else WINDOW_BIT
    name = fire_backend(grad, backend=backend, op=('bwd', wbit))
    if name == 'torch':
        return _torch_backward(grad, code, norm, inplace)
    gin = grad if inplace else torch.empty_like(grad)
    if grad.numel():
        _table().backends[name].backward(grad, code, gin, norm, wbit)
    return gin


def decode_spikes(code: Tensor, norm: float, dtype: torch.dtype, backend: str = 'auto'
                  ) -> Tensor:
    """The spikes ``count / norm`` stored in code bytes (same layout), in ``dtype``."""
    if code.dtype != torch.uint8:
        raise TypeError(f'decode_spikes needs uint8 code bytes, got {code.dtype}')
    name = fire_backend(code, dtype, backend=backend, op=('dec', ))
    if name == 'torch':
        return _torch_decode(code, norm, dtype)
    s = torch.empty_like(code, dtype=dtype)
    if code.numel():
        _table().backends[name].decode(code, s, norm)
    return s
