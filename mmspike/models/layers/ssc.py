"""Spike Sparse Convolution (SSC) in 2D: convolution at active sites only.

A masked image (spike-masked autoencoder) or an event frame is *sparse*: only some sites carry
input. An ordinary convolution writes into every site its kernel reaches, and BatchNorm adds its
bias everywhere, so features leak into inactive sites layer after layer until the mask is washed
out. SSC keeps the set of active sites fixed:

* a stride-1 conv is *submanifold*: it reads active inputs only and writes active outputs only;
* a strided conv keeps the output sites whose nearest input site (the kernel centre for odd
  ``padding = kernel_size // 2``, i.e. input ``(s*i, s*j)``) is active: the mask is downsampled
  by nearest-neighbour sampling, ``mask[:, ::s, ::s]`` (:func:`downsample_mask`); a patchify
  conv (kernel = stride, padding 0) uses the same rule (its block's first site);
* :class:`SparseBatchNorm2d` takes its statistics over active sites and writes zeros elsewhere.

Two interchangeable backends compute the same thing (outputs and gradients, up to float error):

``'dense'``
    the reference: an ordinary conv of the masked input whose output is gated by the output mask.
``'spconv'``
    only active sites are computed: ``spconv.pytorch.SubMConv2d`` (stride 1) or
    ``spconv.pytorch.SparseConv2d`` (strided; its output, which covers every site any active input
    reaches, is then restricted to the downsampled mask) on a ``SparseConvTensor``. spconv has no
    grouped conv, so a depthwise conv runs spconv's rulebook (``ops.get_indice_pairs``) with a
    gather / scale / ``index_add`` in PyTorch; a 1x1 conv is a matmul over the active rows
    (spconv 2.3.8's own 1x1 shortcut reads its ``[O, 1, 1, I]`` weight as ``[I, O]``).

The layers hold ``weight`` / ``bias`` (and BN buffers) exactly like ``nn.Conv2d`` /
``nn.BatchNorm2d``, so converting a network (:func:`convert_to_ssc`) keeps every state-dict key.

spconv 2.3.8's CPU convolution is wrong with more than one intra-op thread and its backward needs
CUDA; a layer built with ``backend='spconv'`` installs mmspike's CPU support into spconv
(:func:`~mmspike.models.layers.spconv_support.ensure_spconv_cpu_support`, idempotent, CPU tensors
only) when it is constructed. Importing this module imports no spconv and patches nothing.

Index tensors handed to spconv must also be row-major: ``mask.nonzero().int()`` is column-major
and spconv silently reads it as if it were row-major (wrong sites), so it is made contiguous.
"""
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmspike.registry import MODELS
from ..neurons import BaseNeuron, build_neuron
from .spconv_support import (ensure_spconv_cpu_support, import_spconv, require_spconv,
                             rulebook_conv, spconv_available)
from .time import fold_time, unfold_time
from .wrapped_bn import WrappedBatchNorm

SSC_BACKENDS = ('dense', 'spconv')

__all__ = ['SSC_BACKENDS', 'spconv_available', 'ensure_spconv_cpu_support', 'downsample_mask',
           'ActiveSites', 'SparseConv2d', 'SparseBatchNorm2d', 'SpikeSparseConv2d',
           'convert_to_ssc', 'check_spconv_supported']


def _spconv_version() -> str:
    try:
        from spconv import __version__
        return __version__
    except ImportError:  # pragma: no cover
        return '2.x'


def check_spconv_supported(module: nn.Module, features: Tensor) -> None:
    """Raise ``NotImplementedError`` naming the op when spconv has no kernel for it on this device.

    spconv 2.3.8's CPU build runs only the native algorithm: submanifold / regular / inverse /
    transposed convs, and max pooling. It has no CPU kernel for average pooling (implicit GEMM
    only), global max/avg pooling, or a conv with a bias in eval mode (a fused bias epilogue).
    """
    spconv = import_spconv()
    if features.is_cuda or spconv is None:
        return
    unsupported = []
    for cls_name in ('SparseAvgPool1d', 'SparseAvgPool2d', 'SparseAvgPool3d',
                     'SparseGlobalMaxPool', 'SparseGlobalAvgPool'):
        cls = getattr(spconv, cls_name, None)
        if cls is not None:
            unsupported.append(cls)
    if isinstance(module, tuple(unsupported)):
        raise NotImplementedError(
            f'spconv {_spconv_version()} has no CPU kernel for '
            f'{type(module).__name__} (CUDA implicit-GEMM only); run it on a GPU, or pool the '
            'features with PyTorch (e.g. a scatter mean over the batch index)')
    from spconv.pytorch.conv import SparseConvolution
    if (isinstance(module, SparseConvolution) and module.bias is not None
            and not module.training and not getattr(module, 'conv1x1', False)):
        raise NotImplementedError(
            f'spconv has no CPU kernel for {type(module).__name__} with a bias in eval mode '
            '("cpu don\'t support act and bias"); build it with bias=False and add the bias to '
            'the output features')


# ---------------------------------------------------------------------------------------------
# Masks
# ---------------------------------------------------------------------------------------------
def _check_mask(mask: Tensor, what: str = 'mask') -> Tensor:
    if not isinstance(mask, Tensor) or mask.dim() != 3:
        raise ValueError(f'{what} must be a [N, H, W] tensor, got '
                         f'{tuple(mask.shape) if isinstance(mask, Tensor) else type(mask)}')
    if mask.dtype != torch.bool:
        if mask.is_floating_point() and not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError(f'{what} must hold 0/1 or booleans')
        mask = mask.bool()
    return mask


def conv_out_size(size: int, kernel_size: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel_size) // stride + 1


def downsample_mask(mask: Tensor, stride: int,
                    out_size: Optional[Tuple[int, int]] = None) -> Tensor:
    """Nearest-neighbour downsampling of an active-site mask: ``mask[:, ::stride, ::stride]``.

    Output site ``(i, j)`` is active iff input site ``(stride * i, stride * j)`` is, the site under
    the kernel centre of a conv with ``padding = kernel_size // 2`` (odd kernel).

    Args:
        mask (Tensor): ``[N, H, W]`` bool.
        stride (int): Downsampling factor.
        out_size (tuple[int, int], optional): The conv's output size, checked against
            ``ceil(H / stride), ceil(W / stride)``.
    """
    mask = _check_mask(mask)
    if stride == 1:
        out = mask
    else:
        out = mask[:, ::stride, ::stride]
    if out_size is not None and tuple(out.shape[-2:]) != tuple(out_size):
        raise ValueError(f'a conv with stride {stride} maps {tuple(mask.shape[-2:])} to '
                         f'{tuple(out_size)}, but SSC needs ceil(size / stride) = '
                         f'{tuple(out.shape[-2:])} (padding = kernel_size // 2 with an odd kernel)')
    return out


class ActiveSites:
    """Active-site masks of one forward pass, shared by the SSC layers of a converted network.

    Layers that a network calls as ``layer(x)`` (so they cannot receive a mask argument) look the
    mask of their input's resolution up here. :meth:`use` installs the mask of the network input
    for one forward pass; every strided :class:`SparseConv2d` adds the (downsampled) mask of its
    output resolution, so later layers at that resolution find it. Outside :meth:`use` there is no
    mask and the layers raise.

    Masks are ``[B, H, W]`` bools; layers that fold time into the batch (``[T * B, C, H, W]``)
    get them repeated T times (time-major, as :func:`~mmspike.models.layers.fold_time`).
    """

    def __init__(self) -> None:
        self._masks: Optional[Dict[Tuple[int, int], Tensor]] = None
        self._batch = 0

    @property
    def active(self) -> bool:
        return self._masks is not None

    @contextmanager
    def use(self, mask: Tensor) -> Iterator['ActiveSites']:
        """Install ``mask`` (``[B, H, W]``, True = active) at the input resolution."""
        mask = _check_mask(mask, 'the active-site mask')
        if self._masks is not None:
            raise RuntimeError('ActiveSites.use() is already active (nested forward passes)')
        self._masks = {tuple(mask.shape[-2:]): mask}
        self._batch = mask.shape[0]
        try:
            yield self
        finally:
            self._masks = None

    def get(self, n: int, size: Tuple[int, int], who: str = 'an SSC layer') -> Tensor:
        """The ``[n, H, W]`` mask at ``size`` (``n`` = batch or time-folded batch)."""
        if self._masks is None:
            raise RuntimeError(f'{who} was called without an active-site mask: run the converted '
                               'network inside `ActiveSites.use(mask)` or pass `mask=` explicitly')
        size = tuple(size)
        if size not in self._masks:
            raise RuntimeError(f'{who} has no active-site mask at resolution {size}; known: '
                               f'{sorted(self._masks)}. Only strided SSC convs create masks of '
                               'new resolutions (is a strided op left unconverted?)')
        return _repeat_batch(self._masks[size], n)

    def put(self, mask: Tensor) -> None:
        """Record the mask of a new resolution (first writer wins: the chain is deterministic).

        ``mask`` may be time-folded (``[T * B, H, W]``, time-major); its first B rows are kept.
        """
        if self._masks is None:
            raise RuntimeError('ActiveSites.put() outside ActiveSites.use()')
        if mask.shape[0] % self._batch:
            raise ValueError(f'mask batch {mask.shape[0]} is not a multiple of {self._batch}')
        self._masks.setdefault(tuple(mask.shape[-2:]), mask[:self._batch])


def _repeat_batch(mask: Tensor, n: int) -> Tensor:
    b = mask.shape[0]
    if n == b:
        return mask
    if n % b:
        raise ValueError(f'mask batch {b} does not divide the (time-folded) batch {n}')
    return mask.repeat(n // b, 1, 1)


# ---------------------------------------------------------------------------------------------
# Layers
# ---------------------------------------------------------------------------------------------
class SparseConv2d(nn.Conv2d):
    """A 2D convolution evaluated at active sites only (see the module docs).

    Same constructor and parameters as ``nn.Conv2d`` (dilation 1, zero padding) plus ``backend``.
    ``forward(x, mask)`` takes ``x`` ``[N, C, H, W]`` and the input mask ``[N, H, W]``; without
    ``mask`` it is looked up in the :class:`ActiveSites` given at construction. Inactive output
    sites are exactly zero and inactive inputs get no gradient.

    Args:
        in_channels, out_channels, kernel_size, stride, padding, groups, bias: as ``nn.Conv2d``;
            ``padding`` defaults to ``kernel_size // 2`` and must equal it for an odd kernel.
        backend (str): ``'dense'`` or ``'spconv'``. Defaults to ``'dense'``.
        sites (ActiveSites, optional): Where to find masks when called without one.
            Defaults to None.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                 stride: int = 1, padding: Optional[int] = None, groups: int = 1,
                 bias: bool = True, backend: str = 'dense',
                 sites: Optional[ActiveSites] = None) -> None:
        k = kernel_size if isinstance(kernel_size, int) else kernel_size[0]
        if not isinstance(kernel_size, int) and len(set(kernel_size)) != 1:
            raise ValueError(f'SparseConv2d needs a square kernel, got {kernel_size}')
        if padding is None:
            padding = k // 2
        super().__init__(in_channels, out_channels, k, stride, padding, groups=groups, bias=bias)
        self._check_geometry()
        self.backend = self._check_backend(backend)
        self.sites = sites

    @staticmethod
    def _check_backend(backend: str) -> str:
        if backend not in SSC_BACKENDS:
            raise ValueError(f'SSC backend must be one of {SSC_BACKENDS}, got {backend!r}')
        if backend == 'spconv':
            require_spconv()  # imports spconv and installs its CPU support (idempotent)
        return backend

    def _check_geometry(self) -> None:
        k, s, p = self.kernel_size[0], self.stride[0], self.padding
        p = p if isinstance(p, int) else p[0]
        if (self.kernel_size[0] != self.kernel_size[1] or self.stride[0] != self.stride[1]
                or isinstance(self.padding, str)
                or (not isinstance(self.padding, int) and self.padding[0] != self.padding[1])):
            raise ValueError('SparseConv2d needs equal kernel sizes, strides and paddings in H and '
                             f'W, got {self.kernel_size}, {self.stride}, {self.padding}')
        if self.dilation != (1, 1) or self.padding_mode != 'zeros':
            raise ValueError('SparseConv2d supports dilation 1 and zero padding only')
        # A patchify conv (kernel = stride, no padding: Spikformer V2's 2x2/2 stem convs) reads
        # only its own block; its output site is active iff the block's first site is.
        patchify = k == s and p == 0
        if not patchify and (k % 2 != 1 or p != k // 2):
            raise ValueError(f'SSC needs an odd kernel with padding kernel_size // 2 (the output '
                             f'site sits on the kernel centre) or kernel = stride with padding 0, '
                             f'got kernel {k}, stride {s}, padding {p}')
        if self.groups not in (1, self.in_channels) or (
                self.groups == self.in_channels != 1 and self.out_channels != self.in_channels):
            raise ValueError('SparseConv2d supports groups=1 or depthwise convs (groups = '
                             f'in_channels = out_channels), got groups={self.groups} for '
                             f'{self.in_channels} -> {self.out_channels} channels')
        self._k, self._s, self._p = k, s, p

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, backend: str = 'dense',
                  sites: Optional[ActiveSites] = None) -> 'SparseConv2d':
        """An SSC conv that *shares* ``conv``'s weight and bias Parameters (same state dict)."""
        new = cls(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                  conv.padding[0] if isinstance(conv.padding, tuple) else conv.padding,
                  groups=conv.groups, bias=False, backend=backend, sites=sites)
        if conv.dilation != (1, 1) or conv.padding_mode != 'zeros':
            raise ValueError(f'cannot convert {conv} to SSC: dilation 1 and zero padding only')
        new.weight = conv.weight
        new.bias = conv.bias
        return new

    def output_mask(self, mask: Tensor) -> Tensor:
        """The active sites of the output for input mask ``mask`` (``[N, H, W]``)."""
        H, W = mask.shape[-2:]
        out = (conv_out_size(H, self._k, self._s, self._p),
               conv_out_size(W, self._k, self._s, self._p))
        return downsample_mask(mask, self._s, out)

    def forward(self, x: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        if x.dim() != 4:
            raise ValueError(f'SparseConv2d expects [N, C, H, W], got shape {tuple(x.shape)}')
        if mask is None:
            if self.sites is None:
                raise RuntimeError('SparseConv2d was called without a mask and has no ActiveSites')
            mask = self.sites.get(x.shape[0], x.shape[-2:], 'SparseConv2d')
        mask = _check_mask(mask)
        if mask.shape != (x.shape[0], ) + tuple(x.shape[-2:]):
            raise ValueError(f'mask {tuple(mask.shape)} does not match input {tuple(x.shape)}')
        out_mask = self.output_mask(mask)
        if self.sites is not None and self.sites.active and self._s > 1:
            self.sites.put(out_mask)
        if self.backend == 'dense':
            return self._forward_dense(x, mask, out_mask)
        return self._forward_spconv(x, mask, out_mask)

    def _forward_dense(self, x: Tensor, mask: Tensor, out_mask: Tensor) -> Tensor:
        # Gating the input as well makes inactive inputs receive no gradient, as in spconv.
        x = x * mask.unsqueeze(1).to(x.dtype)
        y = F.conv2d(x, self.weight, self.bias, self.stride, self.padding, groups=self.groups)
        return y * out_mask.unsqueeze(1).to(y.dtype)

    def _forward_spconv(self, x: Tensor, mask: Tensor, out_mask: Tensor) -> Tensor:
        N, _, H, W = x.shape
        Ho, Wo = out_mask.shape[-2:]
        indices = mask.nonzero().int().contiguous()  # [M, 3] (n, y, x), row-major for spconv
        feats = x.permute(0, 2, 3, 1)[mask]  # [M, C]
        out = x.new_zeros(N, Ho, Wo, self.out_channels)
        if indices.shape[0] == 0:
            return out.permute(0, 3, 1, 2)
        if self._k == 1 and self._s == 1:
            # Pointwise: a matmul over the active rows. (spconv 2.3.8's own 1x1 shortcut reads
            # its [O, 1, 1, I] weight as [I, O], so a converted nn.Conv2d weight cannot go there.)
            w = self.weight.view(self.out_channels, -1)
            out_feats = feats @ w.t() if self.groups == 1 else feats * w.view(-1)
            out_idx = indices.long()
        elif self.groups == 1:
            out_feats, out_idx = self._spconv_dense_weight(feats, indices, N, (H, W))
        else:
            out_feats, out_idx = self._spconv_depthwise(feats, indices, N, (H, W))
        if self._s > 1:
            # spconv's regular conv activates every site an active input reaches; SSC keeps the
            # sites of the nearest-downsampled mask (a subset: each one sees its centre input).
            keep = out_mask[out_idx[:, 0], out_idx[:, 1], out_idx[:, 2]]
            out_feats, out_idx = out_feats[keep], out_idx[keep]
        if self.bias is not None:
            out_feats = out_feats + self.bias  # added here: spconv has no CPU bias epilogue
        out = out.index_put((out_idx[:, 0], out_idx[:, 1], out_idx[:, 2]), out_feats)
        return out.permute(0, 3, 1, 2)

    def _spconv_module(self) -> nn.Module:
        # A parameter-free spconv module (hidden from the state dict); the weight is passed per
        # call with torch.func.functional_call, converted from the nn.Conv2d layout.
        mod = self.__dict__.get('_spconv_conv')
        if mod is None:
            spconv = require_spconv()
            from spconv.core import ConvAlgo
            cls = spconv.SubMConv2d if self._s == 1 else spconv.SparseConv2d
            mod = cls(self.in_channels, self.out_channels, self._k, stride=self._s,
                      padding=self._p, bias=False, algo=ConvAlgo.Native)
            mod.weight = nn.Parameter(torch.empty(0), requires_grad=False)
            self.__dict__['_spconv_conv'] = mod
        return mod

    def _spconv_dense_weight(self, feats: Tensor, indices: Tensor, batch: int,
                             size: Tuple[int, int]) -> Tuple[Tensor, Tensor]:
        sp = import_spconv().SparseConvTensor(feats, indices, list(size), batch)
        weight = self.weight.permute(0, 2, 3, 1).contiguous()  # [O, kh, kw, I] (spconv KRSC)
        mod = self._spconv_module()
        mod.train(self.training)
        out = torch.func.functional_call(mod, {'weight': weight}, (sp, ))
        return out.features, out.indices.long()

    def _spconv_depthwise(self, feats: Tensor, indices: Tensor, batch: int,
                          size: Tuple[int, int]) -> Tuple[Tensor, Tensor]:
        # spconv has no grouped conv: take its rulebook (input row -> output row per kernel
        # offset) and apply the per-channel taps with gather / multiply / index_add.
        from spconv.core import ConvAlgo
        from spconv.pytorch import ops
        k, s, p = self._k, self._s, self._p
        out_idx, pairs, counts = ops.get_indice_pairs(
            indices, batch, list(size), ConvAlgo.Native, [k, k], [s, s], [p, p], [1, 1],
            [0, 0], s == 1, False)
        taps = self.weight.view(self.out_channels, k * k).t()  # [k*k, C], offset = ky * k + kx
        out = rulebook_conv(feats, taps, pairs, counts.tolist(), out_idx.shape[0], subm=s == 1)
        return out, out_idx.long()

    def extra_repr(self) -> str:
        return super().extra_repr() + f', backend={self.backend}'


class SparseBatchNorm2d(WrappedBatchNorm):
    """BatchNorm over the active sites only; inactive sites are written as exact zeros.

    Same parameters, buffers and state-dict keys as ``nn.BatchNorm2d`` (a
    :class:`~.wrapped_bn.WrappedBatchNorm`: MMEngine's ``sync_bn`` conversion synchronises its
    statistics and keeps the mask). ``forward(x, mask)`` with ``x`` ``[N, C, H, W]`` and ``mask``
    ``[N, H, W]``; without ``mask`` it is looked up in ``sites``.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: Optional[float] = 0.1,
                 affine: bool = True, track_running_stats: bool = True,
                 sites: Optional[ActiveSites] = None, bn: Optional[nn.Module] = None) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, bn=bn)
        self.sites = sites

    @classmethod
    def from_bn(cls, bn: nn.BatchNorm2d,
                sites: Optional[ActiveSites] = None) -> 'SparseBatchNorm2d':
        """A sparse BN around ``bn`` itself (its parameters and running buffers)."""
        new = cls(bn.num_features, sites=sites, bn=bn)
        new.train(bn.training)
        return new

    def forward(self, x: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        if x.dim() != 4:
            raise ValueError(f'SparseBatchNorm2d expects [N, C, H, W], got {tuple(x.shape)}')
        if mask is None:
            if self.sites is None:
                raise RuntimeError('SparseBatchNorm2d was called without a mask and has no '
                                   'ActiveSites')
            mask = self.sites.get(x.shape[0], x.shape[-2:], 'SparseBatchNorm2d')
        mask = _check_mask(mask)
        if mask.shape != (x.shape[0], ) + tuple(x.shape[-2:]):
            raise ValueError(f'mask {tuple(mask.shape)} does not match input {tuple(x.shape)}')
        nhwc = x.permute(0, 2, 3, 1)
        out = torch.zeros_like(nhwc)
        if not bool(mask.any()):
            return out.permute(0, 3, 1, 2)
        active = nhwc[mask]  # [M, C]
        # BatchNorm2d on [M, C, 1, 1]: its statistics (and running buffers) see active sites only.
        normed = self.batch_norm(active[:, :, None, None])[:, :, 0, 0]
        out = out.index_put(mask.nonzero(as_tuple=True), normed)
        return out.permute(0, 3, 1, 2)


@MODELS.register_module()
class SpikeSparseConv2d(nn.Module):
    """Spike Sparse Convolution: ``neuron -> SSC conv -> sparse BN`` on ``[T, B, C, H, W]``.

    The sparse counterpart of :class:`~mmspike.models.layers.SpikeConvBN` (same submodule names,
    so the same state-dict keys). The neuron keeps inactive sites at zero (it fires nothing for
    zero input), the conv computes active sites only, BN normalises over active sites.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        kernel_size (int): Odd kernel size. Defaults to 3.
        stride (int): Defaults to 1 (submanifold).
        groups (int): 1 or ``in_channels`` (depthwise). Defaults to 1.
        bias (bool): Conv bias. Defaults to False.
        neuron (dict, optional): Neuron before the conv; None for real-valued input.
            Defaults to ``dict(type='MultiSpike')``.
        norm (bool): Whether a sparse BatchNorm follows. Defaults to True.
        backend (str): ``'dense'`` or ``'spconv'``. Defaults to ``'dense'``.

    ``forward(x, mask)`` takes the input mask ``[B, H, W]`` and returns ``(y, out_mask)``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                 stride: int = 1, groups: int = 1, bias: bool = False,
                 neuron: Optional[dict] = dict(type='MultiSpike'), norm: bool = True,
                 backend: str = 'dense') -> None:
        super().__init__()
        self.neuron = build_neuron(neuron)
        self.conv = SparseConv2d(in_channels, out_channels, kernel_size, stride, groups=groups,
                                 bias=bias, backend=backend)
        self.bn = SparseBatchNorm2d(out_channels) if norm else None

    @property
    def backend(self) -> str:
        return self.conv.backend

    @backend.setter
    def backend(self, value: str) -> None:
        self.conv.backend = SparseConv2d._check_backend(value)

    def forward(self, x: Tensor, mask: Tensor) -> Tuple[Tensor, Tensor]:
        if x.dim() != 5:
            raise ValueError(f'SpikeSparseConv2d expects [T, B, C, H, W], got {tuple(x.shape)}')
        mask = _check_mask(mask)
        if mask.shape != (x.shape[1], ) + tuple(x.shape[-2:]):
            raise ValueError(f'mask {tuple(mask.shape)} does not match [T, B, C, H, W] input '
                             f'{tuple(x.shape)}')
        x, T = fold_time(self.neuron(x))
        folded = _repeat_batch(mask, x.shape[0])
        y = self.conv(x, folded)
        out_mask = self.conv.output_mask(folded)
        if self.bn is not None:
            y = self.bn(y, out_mask)
        return unfold_time(y, T), out_mask[:mask.shape[0]]


# ---------------------------------------------------------------------------------------------
# Converting a network
# ---------------------------------------------------------------------------------------------
def _zero_preserving(module: nn.Module) -> bool:
    """Leaf modules that map zero to zero site-wise and so cannot leak into inactive sites."""
    if isinstance(module, (BaseNeuron, nn.Identity, nn.Dropout, nn.ReLU)):
        return True
    # Stochastic depth scales whole samples: zero stays zero.
    return type(module).__name__ in ('SpikeDropPath', 'DropPath')


def convert_to_ssc(module: nn.Module, sites: ActiveSites, backend: str = 'dense') -> nn.Module:
    """Turn every ``nn.Conv2d`` / ``nn.BatchNorm2d`` inside ``module`` into its SSC form, in place.

    The SSC modules share the original Parameters and buffers and take the original attribute
    names, so the state dict (keys, shapes, tensors) is unchanged. They find their masks in
    ``sites`` (run the network inside ``sites.use(mask)``).

    Any other leaf module that could write into inactive sites (pooling, LayerNorm, Linear, ...)
    makes the conversion fail with a ``TypeError`` naming it: a silently leaking layer would
    defeat SSC. Neurons, identities, dropout and stochastic depth preserve zeros and are kept.

    Returns:
        nn.Module: ``module`` itself (or its replacement if ``module`` is a conv / BN).
    """
    SparseConv2d._check_backend(backend)

    def convert(m: nn.Module, name: str) -> nn.Module:
        if isinstance(m, SparseConv2d):
            m.backend, m.sites = backend, sites
            return m
        if isinstance(m, SparseBatchNorm2d):
            m.sites = sites
            return m
        if type(m) is nn.Conv2d:
            return SparseConv2d.from_conv(m, backend, sites)
        if type(m) is nn.BatchNorm2d:
            return SparseBatchNorm2d.from_bn(m, sites)
        children = list(m.named_children())
        if not children:
            if any(True for _ in m.parameters(recurse=False)) or not _zero_preserving(m):
                raise TypeError(f'cannot convert {name or "the module"} ({type(m).__name__}) to '
                                'SSC: only Conv2d, BatchNorm2d and zero-preserving modules '
                                '(neurons, identity, dropout, drop path) are allowed')
            return m
        for child_name, child in children:
            new = convert(child, f'{name}.{child_name}' if name else child_name)
            if new is not child:
                setattr(m, child_name, new)
        return m

    return convert(module, '')
