"""Spike-driven self-attention without softmax (E-SpikeFormer, Meta-SpikeFormer, Spikformer).

Q, K and V are spike tensors, so the attention is a product of three matrices with no softmax in
between and is associative: ``(Q K^T) V == Q (K^T V)``. :func:`spike_attention` evaluates
whichever order costs fewer operations for the token count: ``(Q K^T) V`` builds an ``N x N`` map
(quadratic in the tokens; a 1333-pixel detection input has ~5000 tokens at stride 16),
``Q (K^T V)`` a ``d x d_v`` one (linear in the tokens).
"""
from typing import Callable, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from mmspike.registry import MODELS
from ..execution import ExecutionModeMixin
from ..neurons import build_neuron
from .fused import bn_fire, spike_convs
from .rep_conv import LinearPair, RepConv
from .time import fold_time, unfold_time

ATTENTION_ORDERS = ('auto', 'qk_first', 'kv_first')
PROJECTIONS = ('linear', 'repconv', 'linear_pair')


def cheaper_attention_order(num_tokens: int, qk_dim: int, v_dim: int) -> str:
    """The cheaper evaluation order of ``Q K^T V`` for one head.

    ``(Q K^T) V`` costs ``N^2 (d + d_v)`` multiply-adds, ``Q (K^T V)`` costs ``2 N d d_v``; ties go
    to ``'kv_first'``, whose intermediate (``d x d_v``) does not grow with the input size.

    Returns:
        str: ``'qk_first'`` or ``'kv_first'``.
    """
    qk_first = num_tokens * num_tokens * (qk_dim + v_dim)
    kv_first = 2 * num_tokens * qk_dim * v_dim
    return 'qk_first' if qk_first < kv_first else 'kv_first'


def spike_attention(q: Tensor, k: Tensor, v: Tensor, order: str = 'auto') -> Tensor:
    """``Q K^T V`` without softmax, in the requested (or the cheaper) order.

    Args:
        q (Tensor): ``[..., N, d]``.
        k (Tensor): ``[..., N, d]``.
        v (Tensor): ``[..., N, d_v]``.
        order (str): ``'qk_first'`` computes ``(Q K^T) V``, ``'kv_first'`` computes ``Q (K^T V)``,
            ``'auto'`` picks the cheaper one (:func:`cheaper_attention_order`). Defaults to
            ``'auto'``.

    Returns:
        Tensor: ``[..., N, d_v]``.
    """
    if order not in ATTENTION_ORDERS:
        raise ValueError(f'attention order must be one of {ATTENTION_ORDERS}, got {order!r}')
    if q.shape != k.shape or q.shape[:-1] != v.shape[:-1]:
        raise ValueError(f'q and k must have the same shape and v the same tokens, got '
                         f'q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}')
    if order == 'auto':
        order = cheaper_attention_order(q.shape[-2], q.shape[-1], v.shape[-1])
    if order == 'qk_first':
        return (q @ k.transpose(-2, -1)) @ v
    return q @ (k.transpose(-2, -1) @ v)


def _channels_last(*maps: Tensor) -> bool:
    """Whether every ``[T, B, C, H, W]`` map is stored channels-last (``[T, B, H, W, C]`` dense)."""
    return all(t.permute(0, 1, 3, 4, 2).is_contiguous() for t in maps)


def _first_conv(projection: nn.Sequential
                ) -> Optional[Tuple[nn.Conv2d, Callable[[Tensor], Tensor]]]:
    """Split a :func:`build_projection` module into its first conv and the rest, for the fused
    fast path; None for a projection that is not split (it then runs as a module)."""
    if type(projection) is not nn.Sequential or len(projection) != 2:
        return None
    core, bn = projection[0], projection[1]
    if type(core) is nn.Conv2d:
        return core, bn
    if type(core) is LinearPair and type(core.conv1) is nn.Conv2d:
        return core.conv1, lambda y: bn(core.after_conv1(y))
    return None


def build_projection(kind: str, in_channels: int, out_channels: int, bias: bool = False,
                     hidden_ratio: float = 1.5) -> nn.Sequential:
    """A projection followed by BN, on ``[N, C, H, W]``: ``Sequential(core, BatchNorm2d)``.

    Args:
        kind (str): ``'linear'`` (1x1 conv), ``'repconv'`` (:class:`RepConv`) or ``'linear_pair'``
            (:class:`LinearPair` with ``hidden_ratio * in_channels`` hidden channels).
        bias (bool): Bias of the ``'linear'`` conv. Defaults to False.
        hidden_ratio (float): Hidden width of ``'linear_pair'``. Defaults to 1.5.
    """
    if kind == 'linear':
        core = nn.Conv2d(in_channels, out_channels, 1, bias=bias)
    elif kind == 'repconv':
        core = RepConv(in_channels, out_channels)
    elif kind == 'linear_pair':
        core = LinearPair(in_channels, int(in_channels * hidden_ratio), out_channels)
    else:
        raise ValueError(f'projection must be one of {PROJECTIONS}, got {kind!r}')
    return nn.Sequential(core, nn.BatchNorm2d(out_channels))


@MODELS.register_module()
class SpikeDrivenAttention(ExecutionModeMixin, nn.Module):
    """Spike-driven multi-head self-attention on ``[T, B, C, H, W]`` maps (no softmax).

    ::

        s = N(x)
        Q = N(P_q(s)),  K = N(P_k(s)),  V = N(P_v(s))        # P_* = projection + BN
        A = scale * Q K^T V                                 # per head, cheaper order
        out = P_o(N_attn(A))

    Q and K have C channels, V has ``value_ratio * C`` (E-SpikeFormer widens V by 4 to make up
    for its cheap linear projections); ``P_o`` maps back to C.

    Args:
        channels (int): Channels C.
        num_heads (int): Heads; must divide C. Defaults to 8.
        value_ratio (int): Width of V relative to C. Defaults to 1.
        projection (str): Q/K/V and output projection (see :func:`build_projection`):
            ``'linear'`` (E-SpikeFormer base family, Spikformer), ``'repconv'``
            (Meta-SpikeFormer) or ``'linear_pair'`` (E-SpikeFormer large family).
            Defaults to ``'linear'``.
        proj_bias (bool): Bias of a ``'linear'`` output projection (Spikformer has one).
            Defaults to False.
        scale (float, optional): Factor on ``Q K^T V``. Defaults to ``2 / sqrt(C / num_heads)``
            (E-SpikeFormer); Spikformer and Meta-SpikeFormer use 0.125.
        neuron (dict): Neuron config (input, Q, K, V). Defaults to ``dict(type='MultiSpike')``.
        attn_neuron (dict, optional): Neuron on the attention output. Defaults to ``neuron``
            (Spikformer and Meta-SpikeFormer use a LIF with threshold 0.5).
        order (str): ``'auto'``, ``'qk_first'`` or ``'kv_first'`` (see :func:`spike_attention`)
            on the fast execution path; the plain path always computes ``(Q K^T) V``, as the
            upstream code does. Defaults to ``'auto'``.
        execution_mode (str, optional): ``'fast'`` or ``'plain'`` (:mod:`mmspike.models.execution`;
            :func:`~mmspike.models.set_execution_mode` changes it on a whole model, neurons
            included). Defaults to None: the construction default.

    On the fast path the input neuron runs fused with the Q/K/V projections' first convs and the
    attention neuron with the output projection (:func:`~mmspike.models.layers.spike_convs`),
    in training the Q/K/V projections' BNs inside their neurons' firing passes (channels-last
    maps), and ``Q (K^T V)`` is computed transposed, without layout copies.
    """

    def __init__(self, channels: int, num_heads: int = 8, value_ratio: int = 1,
                 projection: str = 'linear', proj_bias: bool = False,
                 scale: Optional[float] = None,
                 neuron: Optional[dict] = dict(type='MultiSpike'),
                 attn_neuron: Optional[dict] = None, order: str = 'auto',
                 execution_mode: Optional[str] = None) -> None:
        super().__init__()
        self.init_execution_mode(execution_mode)
        if num_heads < 1 or channels % num_heads:
            raise ValueError(f'num_heads={num_heads} must divide channels={channels}')
        if isinstance(value_ratio, bool) or not isinstance(value_ratio, int) or value_ratio < 1:
            raise ValueError(f'value_ratio must be an integer >= 1, got {value_ratio!r}')
        if order not in ATTENTION_ORDERS:
            raise ValueError(f'attention order must be one of {ATTENTION_ORDERS}, got {order!r}')
        self.channels = channels
        self.num_heads = num_heads
        self.value_ratio = value_ratio
        self.order = order
        head_dim = channels // num_heads
        self.scale = 2.0 * head_dim ** -0.5 if scale is None else float(scale)
        v_channels = channels * value_ratio

        self.head_neuron = build_neuron(neuron)
        self.q_conv = build_projection(projection, channels, channels)
        self.k_conv = build_projection(projection, channels, channels)
        self.v_conv = build_projection(projection, channels, v_channels)
        self.q_neuron = build_neuron(neuron)
        self.k_neuron = build_neuron(neuron)
        self.v_neuron = build_neuron(neuron)
        self.attn_neuron = build_neuron(neuron if attn_neuron is None else attn_neuron)
        self.proj_conv = build_projection(projection, v_channels, channels, bias=proj_bias)

    def _heads(self, x: Tensor) -> Tensor:
        """``[T, B, C', H, W] -> [T, B, heads, N, C' / heads]`` (channel = head * d + j)."""
        T, B, C, H, W = x.shape
        return x.reshape(T, B, self.num_heads, C // self.num_heads, H * W).transpose(-2, -1)

    def _spike_projections(self, x: Tensor, neuron: nn.Module,
                           projections: Sequence[nn.Sequential],
                           then: Optional[Sequence[nn.Module]] = None) -> List[Tensor]:
        """``[proj(neuron(x)) for proj in projections]`` on ``[T, B, C, H, W]``, each followed by
        its neuron of ``then`` when given; on the fast path the neuron and the projections'
        first convs run fused (spikes kept as bytes), and a projection's training-mode BN runs
        inside the following neuron's firing pass (:func:`~.fused.bn_fire`)."""
        T = x.shape[0]
        then = [None] * len(projections) if then is None else then
        heads = [_first_conv(p) for p in projections]
        fused = None
        if all(h is not None for h in heads):
            fused = spike_convs(x, neuron, [h[0] for h in heads], observed=projections)
        if fused is None:
            s, _ = fold_time(neuron(x))
            outs = [unfold_time(p(s), T) for p in projections]
            return [o if n is None else n(o) for o, n in zip(outs, then)]
        outs = []
        for p, (_, rest), y, n in zip(projections, heads, fused, then):
            spikes = None if n is None or not isinstance(rest, nn.BatchNorm2d) else bn_fire(
                y, rest, n, observed=(p, ))
            if spikes is not None:
                outs.append(unfold_time(spikes, T))
            else:
                out = unfold_time(rest(y), T)
                outs.append(out if n is None else n(out))
        return outs

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 5 or x.shape[2] != self.channels:
            raise ValueError(f'{type(self).__name__} expects [T, B, {self.channels}, H, W], '
                             f'got shape {tuple(x.shape)}')
        T, B, _, H, W = x.shape
        q, k, v = self._spike_projections(x, self.head_neuron,
                                          (self.q_conv, self.k_conv, self.v_conv),
                                          then=(self.q_neuron, self.k_neuron, self.v_neuron))
        order = 'qk_first'  # the plain path: always (Q K^T) V, as upstream
        if self.fast_path:
            order = self.order if self.order != 'auto' else cheaper_attention_order(
                H * W, self.channels // self.num_heads, v.shape[2] // self.num_heads)
        if order == 'kv_first' and not torch.overrides._is_torch_function_mode_enabled():
            kv_first = self._kv_first_tokens if _channels_last(q, k, v) \
                else self._kv_first_transposed
            out = kv_first(q, k, v) * self.scale
        else:  # on [N, d] heads, then back to channels (a copy); what SOP counting sees
            out = spike_attention(self._heads(q), self._heads(k), self._heads(v),
                                  order) * self.scale  # [T, B, heads, N, d_v]
            # explicit channel count: with B = 0 a -1 here would be ambiguous
            out = out.transpose(-2, -1).reshape(T, B, v.shape[2], H, W)
        return self._spike_projections(out, self.attn_neuron, (self.proj_conv, ))[0]

    def _kv_first_transposed(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """Fast path, ``Q (K^T V)`` order, computed transposed as ``(V^T K) Q^T`` per head.

        ``Q^T`` (``[d, N]`` per head) is a view of the ``[T, B, C, H, W]`` map, and so is the
        ``[d_v, N]`` result, so no transpose is copied and the intermediate is ``d_v x d``
        (linear in the tokens). With spike inputs every product and partial sum is a small
        multiple of ``1 / norm^3``, exact in float32, so the output equals the plain path's
        ``(Q K^T) V`` bit for bit (as long as ``N * d * D^3 < 2^24``); the gradients w.r.t.
        Q, K, V (products with the real-valued output gradient) agree to float rounding.
        """
        T, B, C, H, W = q.shape
        n, h, Cv = H * W, self.num_heads, v.shape[2]
        # explicit sizes, no -1: an empty batch (B = 0) must reshape too
        qt = q.reshape(T, B, h, C // h, n)  # [.., d, N] = Q^T
        kt = k.reshape(T, B, h, C // h, n)
        vt = v.reshape(T, B, h, Cv // h, n)  # [.., d_v, N] = V^T
        return ((vt @ kt.transpose(-2, -1)) @ qt).reshape(T, B, Cv, H, W)

    def _kv_first_tokens(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """Fast path, ``Q (K^T V)`` order, on channels-last maps: per head on token-major views.

        In channels-last memory each ``[T * B]`` sample is an ``[N, C]`` row-major matrix and a
        head is a column slice of it, which a batched matmul reads in place (leading dimension
        C); :meth:`_kv_first_transposed` would make ``matmul`` copy all three inputs there (the
        head and batch strides do not merge) and return a contiguous (not channels-last) map.
        The result is written channels-last. Exact for spike inputs, as explained there, so the
        bits equal the plain path's.
        """
        T, B, C, H, W = q.shape
        n, h, Cv = H * W, self.num_heads, v.shape[2]
        d, dv = C // h, Cv // h
        # [T, B, C, H, W] channels-last -> [T * B, N, C] (a view)
        qs, ks, vs = (t.permute(0, 1, 3, 4, 2).reshape(T * B, n, t.shape[2]) for t in (q, k, v))
        # split, not h slices: its backward writes the heads' gradients into one tensor (a cat);
        # a slice's backward zero-fills a full-size gradient per head, then autograd adds them
        outs = [qi @ (ki.transpose(-2, -1) @ vi)
                for qi, ki, vi in zip(qs.split(d, -1), ks.split(d, -1), vs.split(dv, -1))]
        out = torch.cat(outs, dim=-1)  # [T * B, N, Cv]
        return out.view(T, B, H, W, Cv).permute(0, 1, 4, 2, 3)

    def extra_repr(self) -> str:
        return (f'channels={self.channels}, num_heads={self.num_heads}, '
                f'value_ratio={self.value_ratio}, scale={self.scale:.4g}, order={self.order}')
