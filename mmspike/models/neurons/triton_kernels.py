"""Triton kernels of the integer firing (:mod:`.kernels`), imported only when the ``'triton'``
backend is first used (importing this module imports Triton).

The arithmetic is that of the torch ops on CUDA: values are widened to float32, the division by
``norm`` is a multiplication by the float32 reciprocal (as CUDA's ``tensor / scalar``), and the
result is rounded once to the output dtype. Under ``TRITON_INTERPRET=1`` the kernels run on CPU
tensors (how the tests check them without a GPU).
"""
import triton
import triton.language as tl


@triton.jit
def fire_fwd(u_ptr, out_ptr, code_ptr, n, D, inv, RMODE: tl.constexpr, OPEN: tl.constexpr,
             CODE: tl.constexpr, BLOCK: tl.constexpr):
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
def fire_bwd(g_ptr, code_ptr, gin_ptr, n, inv, WBIT: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    inb = offs < n
    g = tl.load(g_ptr + offs, mask=inb, other=0.0).to(tl.float32)
    code = tl.load(code_ptr + offs, mask=inb, other=0).to(tl.int32)
    v = tl.where((code & WBIT) != 0, g * inv, 0.0)
    tl.store(gin_ptr + offs, v.to(gin_ptr.dtype.element_ty), mask=inb)


@triton.jit
def fire_dec(code_ptr, s_ptr, n, inv, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    inb = offs < n
    code = tl.load(code_ptr + offs, mask=inb, other=0).to(tl.int32)
    s = (code & 0x7F).to(tl.float32) * inv
    tl.store(s_ptr + offs, s.to(s_ptr.dtype.element_ty), mask=inb)
