"""Fused integer-firing kernels of the fast execution path.

One pass forward, one pass backward. The forward reads the membrane potential ``u`` and writes the
spikes ``round(clamp(u, 0, D)) / norm`` and, when a backward will follow, one *code byte* per
element: bits 0-6 hold the integer spike count, bit 7 the straight-through window (not
``u < 0 or u > D``; not ``u <= 0 or u >= D`` for the open window; NaN passes, as upstream).
The backward reads the gradient and the code byte and writes ``window ? grad / norm : 0``; a
conv fed by the spikes rebuilds them from the same byte (:func:`decode_spikes`), so neither the
float input nor the float spikes are kept. A neuron alone keeps just the window (``bool``).

Backends, picked per tensor (:func:`fire_backend`):

* ``'c'``: float32/float64 CPU tensors. A small C kernel (vectorised for AVX2/AVX-512 by GCC's
  ``target_clones``, threads by OpenMP) built on first use with the system C compiler into a
  per-user cache (``$MMSPIKE_KERNEL_CACHE`` or ``~/.cache/mmspike``) and loaded with ctypes; no
  PyTorch headers, so the build takes well under a second. ``MMSPIKE_CPU_KERNEL=0`` disables it.
* ``'triton'``: float32/float16/bfloat16 CUDA tensors when Triton is installed (optional).
* ``'torch'``: everything else (and whenever a backend is unavailable): the same arithmetic as a
  few fused-by-hand torch ops.

All backends compute exactly what the plain path computes on the same device (clamp, round half-up
via ``floor + (frac >= 0.5)``, half to even, or ``floor(c + 0.5)`` with the sum rounded in the
input dtype (upstream's large family), then the division by ``norm`` as torch does it:
a true division in float32/float64 on the CPU, a multiplication by the float32 reciprocal on
CUDA), so the spikes are bit-identical to it.
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
from contextlib import contextmanager
from typing import Iterator, Optional, Tuple

import torch
from torch import Tensor

#: Largest D whose spike count fits the 7 count bits of a code byte.
MAX_CODED_SPIKES = 127
WINDOW_BIT = 0x80
COUNT_BITS = 0x7F

# --------------------------------------------------------------------------------------- C (CPU)
_C_SOURCE = r'''
#include <stdint.h>
#include <math.h>

#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#define CHUNK 16384
#define PAR _Pragma("omp parallel for num_threads(nthreads) schedule(static) \
                      if(nchunks > 1 && nthreads > 1)")

/* Branch-free on purpose: -fno-trapping-math lets GCC if-convert and vectorise the selects.
   NaN propagates like torch.clamp / floor (all comparisons false). */
#define DEFINE(T, SUF, FLOOR, RINT)                                                              \
CLONES static void fwd_##SUF(const T *restrict u, T *restrict out, uint8_t *restrict code,      \
                             int64_t lo, int64_t hi, T D, T norm, int rmode, int open_w,        \
                             int full) {                                                        \
  for (int64_t i = lo; i < hi; ++i) {                                                           \
    T x = u[i];                                                                                 \
    T c = x > D ? D : x;                                                                        \
    c = x < (T)0 ? (T)0 : c;                                                                    \
    T r;                                                                                        \
    if (rmode == 1) { T fl = FLOOR(c); r = fl + ((c - fl) >= (T)0.5 ? (T)1 : (T)0); }          \
    else if (rmode == 2) r = FLOOR(c + (T)0.5);                                                 \
    else r = RINT(c);                                                                           \
    out[i] = r / norm;                                                                          \
    if (code) {                                                                                 \
      int w = open_w ? !((x <= (T)0) | (x >= D)) : !((x < (T)0) | (x > D));                     \
      int k = (r == r) ? (int)r : 0;                                                            \
      code[i] = (uint8_t)(full ? (k | (w << 7)) : w);                                           \
    }                                                                                           \
  }                                                                                             \
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
void fire_fwd_##SUF(const T *u, T *out, uint8_t *code, int64_t n, double D, double norm,        \
                    int rmode, int open_w, int full, int nthreads) {                            \
  int64_t nchunks = (n + CHUNK - 1) / CHUNK;                                                    \
  PAR for (int64_t c = 0; c < nchunks; ++c) {                                                   \
    int64_t lo = c * CHUNK, hi = lo + CHUNK < n ? lo + CHUNK : n;                               \
    fwd_##SUF(u, out, code, lo, hi, (T)D, (T)norm, rmode, open_w, full);                        \
  }                                                                                             \
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
'''
# -ffp-contract=off: no FMA contraction, so every operation rounds exactly as in the torch ops.
_C_FLAGS = ['-O3', '-shared', '-fPIC', '-fopenmp', '-fno-math-errno', '-fno-trapping-math',
            '-ffp-contract=off']
_C_SUFFIX = {torch.float32: 'f32', torch.float64: 'f64'}

_lib = None
_lib_error: Optional[str] = None
_lib_lock = threading.Lock()


def _cache_dir() -> str:
    root = os.environ.get('MMSPIKE_KERNEL_CACHE')
    if not root:
        root = os.path.join(os.path.expanduser('~'), '.cache', 'mmspike')
    return os.path.join(root, 'kernels')


def _build_c_library() -> ctypes.CDLL:
    cc = os.environ.get('CC', 'gcc')
    key = hashlib.sha256('\0'.join([_C_SOURCE, cc, *_C_FLAGS, platform.machine(),
                                    sys.platform]).encode()).hexdigest()[:16]
    cache = _cache_dir()
    path = os.path.join(cache, f'fire_{key}.so')
    if not os.path.exists(path):
        os.makedirs(cache, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            src = os.path.join(tmp, 'fire.c')
            with open(src, 'w') as f:
                f.write(_C_SOURCE)
            so = os.path.join(tmp, 'fire.so')
            proc = subprocess.run([cc, *_C_FLAGS, src, '-o', so, '-lm'], capture_output=True,
                                  text=True, timeout=120)
            if proc.returncode != 0:
                raise RuntimeError(f'{cc} failed: {proc.stderr.strip()[-2000:]}')
            os.replace(so, path)  # atomic: concurrent builders never see a partial file
    lib = ctypes.CDLL(path)
    vp, i64, f64, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_double, ctypes.c_int
    for suf in _C_SUFFIX.values():
        getattr(lib, f'fire_fwd_{suf}').argtypes = [vp, vp, vp, i64, f64, f64, i32, i32, i32,
                                                    i32]
        getattr(lib, f'fire_bwd_{suf}').argtypes = [vp, vp, vp, i64, f64, i32, i32]
        getattr(lib, f'fire_dec_{suf}').argtypes = [vp, vp, i64, f64, i32]
    return lib


def _c_library() -> Optional[ctypes.CDLL]:
    """The CPU kernel library, built on first use; None (once warned) if it cannot be built."""
    global _lib, _lib_error
    if _lib is not None or _lib_error is not None:
        return _lib
    with _lib_lock:
        if _lib is None and _lib_error is None:
            if os.environ.get('MMSPIKE_CPU_KERNEL', '1') == '0':
                _lib_error = 'disabled by MMSPIKE_CPU_KERNEL=0'
            else:
                try:
                    _lib = _build_c_library()
                except Exception as e:  # no compiler, read-only home, ...: fall back to torch
                    _lib_error = f'{type(e).__name__}: {e}'
                    warnings.warn('mmspike: the fused CPU neuron kernel is unavailable '
                                  f'({_lib_error}); using torch ops instead')
    return _lib


# ------------------------------------------------------------------------------- Triton (CUDA)
try:  # optional dependency
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the environment
    triton = None

if triton is not None:

    @triton.jit
    def _tl_fire_fwd(u_ptr, out_ptr, code_ptr, n, D, inv, RMODE: tl.constexpr,
                     OPEN: tl.constexpr, CODE: tl.constexpr, BLOCK: tl.constexpr):
        offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        inb = offs < n
        x = tl.load(u_ptr + offs, mask=inb, other=0.0).to(tl.float32)
        c = tl.where(x > D, D, x)
        c = tl.where(x < 0.0, 0.0, c)
        fl = tl.floor(c)
        frac = c - fl
        if RMODE == 1:
            r = fl + tl.where(frac >= 0.5, 1.0, 0.0)
        elif RMODE == 2:  # floor(c + 0.5) with the sum rounded to the input dtype, as torch does
            r = tl.floor((c + 0.5).to(u_ptr.dtype.element_ty).to(tl.float32))
        else:  # half to even, exactly: up if frac > 0.5, or frac == 0.5 and floor is odd
            half = fl * 0.5
            odd = (half - tl.floor(half)) != 0.0
            r = fl + tl.where((frac > 0.5) | ((frac == 0.5) & odd), 1.0, 0.0)
        tl.store(out_ptr + offs, (r * inv).to(out_ptr.dtype.element_ty), mask=inb)
        if CODE != 0:
            if OPEN:
                w = 1 - ((x <= 0.0) | (x >= D)).to(tl.int32)
            else:
                w = 1 - ((x < 0.0) | (x > D)).to(tl.int32)
            if CODE == 1:
                w = tl.where(r == r, r, 0.0).to(tl.int32) | (w << 7)
            tl.store(code_ptr + offs, w.to(tl.uint8), mask=inb)

    @triton.jit
    def _tl_fire_bwd(g_ptr, code_ptr, gin_ptr, n, inv, WBIT: tl.constexpr,
                     BLOCK: tl.constexpr):
        offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        inb = offs < n
        g = tl.load(g_ptr + offs, mask=inb, other=0.0).to(tl.float32)
        code = tl.load(code_ptr + offs, mask=inb, other=0).to(tl.int32)
        v = tl.where((code & WBIT) != 0, g * inv, 0.0)
        tl.store(gin_ptr + offs, v.to(gin_ptr.dtype.element_ty), mask=inb)

    @triton.jit
    def _tl_fire_dec(code_ptr, s_ptr, n, inv, BLOCK: tl.constexpr):
        offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        inb = offs < n
        code = tl.load(code_ptr + offs, mask=inb, other=0).to(tl.int32)
        s = (code & 0x7F).to(tl.float32) * inv
        tl.store(s_ptr + offs, s.to(s_ptr.dtype.element_ty), mask=inb)


def _cuda_reciprocal(norm: float) -> float:
    """``1 / norm`` as CUDA's ``tensor / scalar`` uses it: PyTorch multiplies by the float32
    reciprocal there (it divides on the CPU), so the Triton kernels do the same."""
    return float(torch.tensor(1.0, dtype=torch.float32) / torch.tensor(norm, dtype=torch.float32))


_TRITON_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_TRITON_BLOCK = 1024


def _triton_usable(device: torch.device, dtype: torch.dtype) -> bool:
    if triton is None or dtype not in _TRITON_DTYPES:
        return False
    # The interpreter (TRITON_INTERPRET=1, set before importing triton) runs the kernels on the
    # CPU: that is how the tests check them on a machine without a GPU.
    return device.type == 'cuda' or os.environ.get('TRITON_INTERPRET') == '1'


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


BACKENDS = ('c', 'triton', 'torch')
_forced: Optional[str] = None


@contextmanager
def use_backend(name: Optional[str]) -> Iterator[None]:
    """Context manager: fire with backend ``name`` where it applies (``'torch'`` always does;
    ``'c'`` and ``'triton'`` only for their devices and dtypes); None restores the automatic
    choice. For benchmarks and tests."""
    global _forced
    if name is not None and name not in BACKENDS:
        raise ValueError(f'backend must be one of {BACKENDS} or None, got {name!r}')
    previous, _forced = _forced, name
    try:
        yield
    finally:
        _forced = previous


def fire_backend(t: Tensor, dtype: Optional[torch.dtype] = None) -> str:
    """The backend for ``t`` (or for a ``dtype`` tensor on ``t``'s device): ``'c'``,
    ``'triton'`` or ``'torch'``."""
    dtype = t.dtype if dtype is None else dtype
    if _forced == 'torch' or _tracing():
        return 'torch'
    if _forced == 'triton' and _triton_usable(t.device, dtype):
        return 'triton'
    if t.device.type == 'cpu' and dtype in _C_SUFFIX and _c_library() is not None:
        return 'c'
    if _triton_usable(t.device, dtype):
        return 'triton'
    return 'torch'


def _round_half_up(x: Tensor) -> Tensor:
    fl = torch.floor(x)
    return fl + (x - fl >= 0.5).to(x.dtype)


def _round(x: Tensor, rounding: int) -> Tensor:
    if rounding == 1:
        return _round_half_up(x)
    if rounding == 2:
        return torch.floor(x + 0.5)
    return torch.round(x)


CODE_KINDS = (None, 'full', 'window')


# ------------------------------------------------------------------------------------- kernels
def fire_forward(u: Tensor, max_spikes: int, norm: float, rounding: int = 1,
                 open_window: bool = False, code: Optional[str] = 'full'
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
    if not _is_dense(u):
        u = u.contiguous()
    code_dtype = torch.bool if code == 'window' else torch.uint8
    backend = fire_backend(u)
    if backend in ('c', 'triton'):
        out = torch.empty_like(u)
        buf = torch.empty_like(u, dtype=code_dtype) if code else None
        n = u.numel()
        if backend == 'c':
            getattr(_lib, f'fire_fwd_{_C_SUFFIX[u.dtype]}')(
                u.data_ptr(), out.data_ptr(), buf.data_ptr() if code else None, n,
                float(max_spikes), float(norm), rounding, int(open_window),
                int(code == 'full'), torch.get_num_threads())
        elif n:
            _tl_fire_fwd[(triton.cdiv(n, _TRITON_BLOCK), )](
                u, out, out if buf is None else buf.view(torch.uint8), n, float(max_spikes),
                _cuda_reciprocal(norm), RMODE=rounding, OPEN=bool(open_window),
                CODE=CODE_KINDS.index(code), BLOCK=_TRITON_BLOCK)
        return out, buf
    c = u.clamp(0, max_spikes)
    r = _round(c, rounding)
    out = r / norm if norm != 1.0 else r
    if code is None:
        return out, None
    window = ~((u <= 0) | (u >= max_spikes)) if open_window else \
        ~((u < 0) | (u > max_spikes))
    if code == 'window':
        return out, window
    return out, torch.nan_to_num(r, nan=0.0).to(torch.uint8) | (window.to(torch.uint8) << 7)


def fire_backward(grad: Tensor, code: Tensor, norm: float, inplace: bool = False) -> Tensor:
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
    backend = fire_backend(grad)
    if backend in ('c', 'triton'):
        gin = grad if inplace else torch.empty_like(grad)
        n = grad.numel()
        if backend == 'c':
            getattr(_lib, f'fire_bwd_{_C_SUFFIX[grad.dtype]}')(
                grad.data_ptr(), code.data_ptr(), gin.data_ptr(), n, float(norm), wbit,
                torch.get_num_threads())
        elif n:
            _tl_fire_bwd[(triton.cdiv(n, _TRITON_BLOCK), )](
                grad, code.view(torch.uint8), gin, n, _cuda_reciprocal(norm), WBIT=wbit,
                BLOCK=_TRITON_BLOCK)
        return gin
    window = code if code.dtype == torch.bool else code >= WINDOW_BIT
    if inplace:
        if norm != 1.0:
            grad.div_(norm)
        return grad.masked_fill_(~window, 0)
    g = grad / norm if norm != 1.0 else grad
    return torch.where(window, g, torch.zeros((), dtype=g.dtype, device=g.device))


def decode_spikes(code: Tensor, norm: float, dtype: torch.dtype) -> Tensor:
    """The spikes ``count / norm`` stored in code bytes (same layout), in ``dtype``."""
    if code.dtype != torch.uint8:
        raise TypeError(f'decode_spikes needs uint8 code bytes, got {code.dtype}')
    backend = fire_backend(code, dtype)
    if backend in ('c', 'triton'):
        s = torch.empty_like(code, dtype=dtype)
        n = code.numel()
        if backend == 'c':
            getattr(_lib, f'fire_dec_{_C_SUFFIX[dtype]}')(code.data_ptr(), s.data_ptr(), n,
                                                          float(norm), torch.get_num_threads())
        elif n:
            _tl_fire_dec[(triton.cdiv(n, _TRITON_BLOCK), )](code, s, n, _cuda_reciprocal(norm),
                                                           BLOCK=_TRITON_BLOCK)
        return s
    s = (code & COUNT_BITS).to(dtype)
    return s / norm if norm != 1.0 else s
