"""spconv, imported when a sparse layer is built (never by importing mmspike), and its CPU support.

spconv 2.3.8's CPU convolution has two faults that mmspike's sparse layers cannot work around from
outside:

* with more than one intra-op thread its native gather-GEMM-scatter (``ops.indice_conv`` /
  ``ops.indice_conv_backward``) returns wrong sums now and then (spconv issue 679: about a third of
  random 14x14 ``SubMConv2d`` calls with 2 threads, none with 1);
* its native backward asks for the current CUDA stream before it looks at the device and raises
  "Found no NVIDIA driver" on a machine without CUDA.

:func:`ensure_spconv_cpu_support` replaces, in spconv's own ``ops`` module, the two conv kernels by
a gather / matmul / ``index_add`` in PyTorch *for CPU tensors only* (the same rulebook and the same
arithmetic, correct at any thread count, with no process state changed on a call; CUDA tensors go
to spconv's kernels unchanged), and the stream getter by one that answers 0 when CUDA is
unavailable. It is idempotent and is called explicitly: by the constructors of the sparse layers
that run spconv (:class:`~mmspike.models.layers.SparseConv2d` with ``backend='spconv'``,
:class:`~mmspike.models.layers.SpikeSparseConv3d`), by :func:`mmspike.engine.apply_patches`, or by
a user who runs spconv modules of their own on the CPU. Importing mmspike patches nothing.
"""
import functools
from types import ModuleType
from typing import List, Optional, Tuple

import torch
from torch import Tensor

__all__ = ['import_spconv', 'spconv_available', 'require_spconv', 'ensure_spconv_cpu_support',
           'spconv_cpu_support_installed', 'rulebook_conv']

_MARK = '_mmspike_cpu_support'


def import_spconv() -> Optional[ModuleType]:
    """``spconv.pytorch`` (imported on the first call), or None when spconv is not installed."""
    try:
        import spconv.pytorch as spconv
    except ImportError:
        return None
    return spconv


def spconv_available() -> bool:
    """Whether ``spconv.pytorch`` can be imported."""
    return import_spconv() is not None


def require_spconv(cpu_support: bool = True) -> ModuleType:
    """``spconv.pytorch``; ``ImportError`` when spconv is missing.

    Args:
        cpu_support (bool): Install :func:`ensure_spconv_cpu_support` (layer constructors that
            will run spconv convs do). Defaults to True.
    """
    spconv = import_spconv()
    if spconv is None:
        raise ImportError("SSC backend 'spconv' needs spconv 2.x (pip install spconv, or "
                          "spconv-cuXXX for CUDA); use backend='dense' without it")
    if cpu_support:
        ensure_spconv_cpu_support()
    return spconv


def spconv_cpu_support_installed() -> bool:
    """Whether :func:`ensure_spconv_cpu_support` has patched spconv's ``ops`` module."""
    if import_spconv() is None:
        return False
    from spconv.pytorch import ops
    return bool(getattr(ops, _MARK, False))


def rulebook_conv(features: Tensor, weight: Tensor, pairs: Tensor, counts: List[int],
                  num_out: int, subm: bool, inverse: bool = False) -> Tensor:
    """A sparse convolution from spconv's rulebook, in differentiable PyTorch ops.

    Args:
        features (Tensor): ``[M_in, C_in]`` active input features.
        weight (Tensor): ``[KV, C_in, C_out]`` (one matrix per kernel offset) or ``[KV, C]``
            (depthwise: one scale per channel and offset).
        pairs (Tensor): ``[2, KV, L]`` rulebook: ``pairs[0, k, :n_k]`` input rows and
            ``pairs[1, k, :n_k]`` output rows of offset ``k`` (swapped for an inverse conv).
        counts (list[int]): ``n_k`` per offset. A submanifold rulebook of spconv counts the first
            half only (it is symmetric): offset ``k`` past the centre has ``counts[KV - 1 - k]``.
        num_out (int): Active output sites.
        subm (bool): Submanifold conv: the centre offset is the identity map (no rulebook).
        inverse (bool): Read the rulebook of the conv this one inverts. Defaults to False.

    Returns:
        Tensor: ``[num_out, C_out]``.
    """
    kv = weight.shape[0]
    centre = kv // 2
    depthwise = weight.dim() == 2

    def apply(x: Tensor, k: int) -> Tensor:
        return x * weight[k] if depthwise else x @ weight[k]

    src_row, dst_row = (1, 0) if inverse else (0, 1)
    pairs = pairs.long()
    out = apply(features, centre) if subm else features.new_zeros(
        num_out, weight.shape[-1] if not depthwise else features.shape[1])
    # Offsets are batched into chunks of at most ~16M gathered values: one index_add per chunk.
    budget = max(1 << 24, features.shape[1]) // max(features.shape[1], 1)
    chunk: List[Tuple[int, int]] = []

    def flush(out: Tensor) -> Tensor:
        parts = [apply(features[pairs[src_row, k, :n]], k) for k, n in chunk]
        dst = torch.cat([pairs[dst_row, k, :n] for k, n in chunk])
        return out.index_add(0, dst, torch.cat(parts))

    for k in range(kv):
        if subm and k == centre:
            continue
        n = counts[kv - 1 - k] if subm and k > centre else counts[k]
        if n <= 0:
            continue
        if chunk and sum(c for _, c in chunk) + n > budget:
            out, chunk = flush(out), []
        chunk.append((k, n))
    if chunk:
        out = flush(out)
    return out


def _krsc_to_kio(filters: Tensor) -> Tensor:
    """spconv's ``[O, *kernel, I]`` filters as ``[KV, I, O]``."""
    return filters.reshape(filters.shape[0], -1, filters.shape[-1]).permute(1, 2, 0)


def _cpu_indice_conv(native):
    @functools.wraps(native)
    def indice_conv(features: Tensor, filters: Tensor, indice_pairs: Tensor,
                    indice_pair_num: Tensor, num_activate_out: int, inverse: bool = False,
                    subm: bool = False, *args, **kwargs) -> Tensor:
        if features.is_cuda or args or not _native_rulebook(kwargs) or \
                kwargs.get('bias') is not None or \
                kwargs.get('act_type', None) not in (None, _no_activation()):
            return native(features, filters, indice_pairs, indice_pair_num, num_activate_out,
                          inverse, subm, *args, **kwargs)
        with torch.no_grad():  # called inside spconv's autograd Function
            return rulebook_conv(features, _krsc_to_kio(filters), indice_pairs,
                                 indice_pair_num.tolist(), int(num_activate_out), subm, inverse)

    return indice_conv


def _cpu_indice_conv_backward(native):
    @functools.wraps(native)
    def indice_conv_backward(features: Tensor, filters: Tensor, out_bp: Tensor,
                             indice_pairs: Tensor, indice_pair_num: Tensor,
                             inverse: bool = False, subm: bool = False, *args,
                             **kwargs) -> Tuple[Tensor, Tensor]:
        if features.is_cuda or args or not _native_rulebook(kwargs):
            return native(features, filters, out_bp, indice_pairs, indice_pair_num, inverse,
                          subm, *args, **kwargs)
        # The forward is out = sum_k scatter(gather(x, in_k) @ W_k, out_k), so
        # dx = sum_k scatter(gather(dout, out_k) @ W_k^T, in_k) and
        # dW_k = gather(x, in_k)^T @ gather(dout, out_k).
        with torch.no_grad():
            w = _krsc_to_kio(filters)  # [KV, I, O]
            kv, centre = w.shape[0], w.shape[0] // 2
            counts = indice_pair_num.tolist()
            src_row, dst_row = (1, 0) if inverse else (0, 1)
            pairs = indice_pairs.long()
            dw = torch.zeros_like(w)
            if subm:
                dx = out_bp @ w[centre].t()
                dw[centre] = features.t() @ out_bp
            else:
                dx = torch.zeros_like(features)
            for k in range(kv):
                if subm and k == centre:
                    continue
                n = counts[kv - 1 - k] if subm and k > centre else counts[k]
                if n <= 0:
                    continue
                src, dst = pairs[src_row, k, :n], pairs[dst_row, k, :n]
                g = out_bp[dst]
                dw[k] = features[src].t() @ g
                dx.index_add_(0, src, g @ w[k].t())
            # back to [O, *kernel, I]
            dfilters = dw.permute(2, 0, 1).reshape(filters.shape)
        return dx, dfilters

    return indice_conv_backward


def _native_rulebook(kwargs: dict) -> bool:
    """Whether the call uses the Native algorithm's rulebook (the only one on the CPU)."""
    from spconv.core import ConvAlgo
    return kwargs.get('algo', ConvAlgo.Native) == ConvAlgo.Native


def _no_activation():
    try:
        import cumm.tensorview as tv
        return tv.gemm.Activation.None_
    except ImportError:  # pragma: no cover
        return None


def ensure_spconv_cpu_support() -> bool:
    """Install mmspike's CPU support into spconv's ``ops`` module (see the module docs).

    Idempotent: a second call changes nothing. Only CPU tensors take the new code; CUDA calls
    reach spconv's kernels unchanged.

    Returns:
        bool: True when spconv is installed (and now supported), False when it is not.
    """
    if import_spconv() is None:
        return False
    from spconv.pytorch import ops
    if getattr(ops, _MARK, False):
        return True
    cuda_stream = ops.get_current_stream

    def get_current_stream() -> int:
        # Called unconditionally by the native backward; only the CUDA path uses the stream.
        if not torch.cuda.is_available():
            return 0
        return cuda_stream()

    ops.get_current_stream = get_current_stream
    ops.indice_conv = _cpu_indice_conv(ops.indice_conv)
    ops.indice_conv_backward = _cpu_indice_conv_backward(ops.indice_conv_backward)
    setattr(ops, _MARK, True)
    return True
