"""Integer-aware synaptic operations (SOPs) and energy of spiking networks.

For every conv, linear and matrix product the model runs (attention's ``Q K^T`` and ``(.) V``
included) the counter records

* the dense MACs (``FLOPs`` below, per image and time step),
* whether the operand is a spike tensor and its firing rate ``fr``: the mean *integer* spike count
  per element (``D`` already inside it for integer neurons, the fraction of ones for LIF),
* ``SOPs = fr * T * FLOPs`` for spike-fed layers, and the energy with the usual convention:
  ``E_AC * SOPs`` for spike-fed layers, ``E_MAC * T * FLOPs`` for layers fed real values (the
  first layer, fed pixels; a head fed time-averaged membranes).

**Which operands are spikes** is decided by provenance, not by guessing from values: the output of
every :class:`~mmspike.models.neurons.BaseNeuron` is marked as a spike tensor of its ``norm``, and
the mark follows the tensor through operations that only move, copy, select or max-pool values
(``view``, ``flatten``, ``permute``, ``cat`` of spikes, ``max_pool2d``, nearest upsampling,
zero padding, ...). A sum or mean of spikes stays a (larger) count: ``mean`` over ``k`` elements
multiplies the norm by ``k``, so a linear head fed the time-mean of ``T`` spike maps is counted with
the summed counts, exactly what ``T`` per-step heads would accumulate. Anything else (BN, add,
multiply) produces real values. The integer counts ``x * norm`` of every spike operand are checked
to be non-negative integers at most the count bound, so a mis-marked tensor cannot pass silently.

**Sparse convolutions** (spconv ``SubMConv*d`` / ``SparseConv*d`` / ``SparseInverseConv*d`` on a
``SparseConvTensor``, E-3DSNN) are counted per module, whatever kernels spconv runs: the MACs are
``pairs * C_in * C_out`` over the (input site, output site) pairs of the rulebook, found from the
site coordinates and the conv geometry, and the SOPs of a spike-fed one are
``C_out * sum_i (spike count of site i) * (pairs of site i)`` (exact, not a mean rate). Ops inside
such a module are not counted again. A dense equivalent does not exist, so ``flops`` of these rows
are the sparse MACs.

The counter uses a :class:`torch.overrides.TorchFunctionMode`, so any ``torch.matmul`` / ``@`` /
``bmm`` / two-operand ``einsum`` is seen without the attention module exposing anything; layers are
named after the module that runs them (``backbone.stages.2.0.attn.matmul_1``).
"""
import csv
import json
import math
import os.path as osp
import warnings
import weakref
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from .firing import NeuronFiringRecorder, neuron_max_count

E_MAC_PJ = 4.6  # pJ per 32-bit float MAC (45 nm, Horowitz 2014)
E_AC_PJ = 0.9  # pJ per 32-bit float accumulate

_CONV_OPS = {'conv1d', 'conv2d', 'conv3d'}
_CONV_T_OPS = {'conv_transpose1d', 'conv_transpose2d', 'conv_transpose3d'}
_MATMUL_OPS = {'matmul', '__matmul__', '__rmatmul__', 'mm', 'bmm'}
_COUNTED_OPS = _CONV_OPS | _CONV_T_OPS | _MATMUL_OPS | {'linear', 'einsum'}

# Operations whose output holds only values of their (first) input: spikes stay spikes.
_MOVE_OPS = {
    'view', 'view_as', 'reshape', 'reshape_as', 'flatten', 'unflatten', 'permute', 'transpose',
    'swapaxes', 'swapdims', 't', 'movedim', 'moveaxis', 'contiguous', 'clone', 'detach',
    'unsqueeze', 'squeeze', 'expand', 'expand_as', 'repeat', 'tile', 'repeat_interleave',
    'narrow', 'select', 'index_select', '__getitem__', 'roll', 'flip', 'chunk', 'split',
    'tensor_split', 'unbind', 'to', 'float', 'double', 'half', 'bfloat16', 'type', 'type_as',
    'cpu', 'cuda', 'pixel_shuffle', 'pixel_unshuffle', 'channel_shuffle', 'unfold',
    'max_pool1d', 'max_pool2d', 'max_pool3d', '_max_pool1d', '_max_pool2d', '_max_pool3d',
    'max_pool1d_with_indices', 'max_pool2d_with_indices', 'max_pool3d_with_indices',
    'adaptive_max_pool1d', 'adaptive_max_pool2d', 'adaptive_max_pool3d',
    '_adaptive_max_pool1d', '_adaptive_max_pool2d', '_adaptive_max_pool3d',
    'adaptive_max_pool1d_with_indices', 'adaptive_max_pool2d_with_indices',
    'adaptive_max_pool3d_with_indices',
}
_CAT_OPS = {'cat', 'concat', 'concatenate', 'stack', 'hstack', 'vstack'}
_REDUCE_OPS = {'sum', 'mean'}
_PROPERTY_GETTERS = (torch.Tensor.T, torch.Tensor.mT, torch.Tensor.H, torch.Tensor.mH)


@dataclass
class _Mark:
    """A tensor known to hold spike counts: ``tensor * norm`` are integers in ``[0, max_count]``."""
    ref: Any
    norm: float
    max_count: Optional[float]


@dataclass
class LayerStats:
    """Raw totals of one counted layer over every call since the counter was reset."""
    name: str
    op: str
    calls: int = 0
    macs: float = 0.0  # dense MACs, all calls
    spike_macs: float = 0.0  # dense MACs of the calls fed by spikes
    real_macs: float = 0.0  # dense MACs of the calls fed real values (executed as MACs)
    spikes: float = 0.0  # integer spike counts of the spike operand
    spike_numel: int = 0  # elements of the spike operand
    sops: float = 0.0  # sum over calls of fr_call * macs_call
    time_steps: int = 1
    input_shape: Tuple[int, ...] = ()
    output_shape: Tuple[int, ...] = ()
    spike_operand: str = ''


def _op_name(func) -> str:
    return getattr(func, '__name__', '') or ''


def _arg(args: Sequence, kwargs: dict, idx: int, key: str, default=None):
    if len(args) > idx:
        return args[idx]
    return kwargs.get(key, default)


def _einsum_macs(equation: str, a: Tensor, b: Tensor, out: Tensor) -> float:
    """Dense MACs of a two-operand einsum: output size times the sizes of the summed indices."""
    eq = equation.replace(' ', '')
    lhs, arrow, rhs = eq.partition('->')
    subs = lhs.split(',')
    if len(subs) != 2:
        raise ValueError(f'expected a two-operand einsum equation, got {equation!r}')
    sizes: Dict[str, int] = {}
    for sub, t in zip(subs, (a, b)):
        head, dots, tail = sub.partition('...')
        for c, n in zip(head, t.shape[:len(head)]):
            sizes[c] = n
        if tail:
            for c, n in zip(tail, t.shape[t.dim() - len(tail):]):
                sizes[c] = n
    labels = ''.join(subs).replace('.', '')
    if not arrow:  # implicit output: the labels that appear once
        rhs = ''.join(c for c in sizes if labels.count(c) == 1)
    summed = [c for c in sizes if c not in rhs]
    return float(out.numel() * math.prod(sizes[c] for c in summed))


class _SOPMode(TorchFunctionMode):

    def __init__(self, counter: 'SOPCounter') -> None:
        super().__init__()
        self.counter = counter

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = _op_name(func)
        c = self.counter
        if name in _COUNTED_OPS:
            if not c._sparse_depth:  # a sparse conv module is counted as a whole
                c._count(name, args, kwargs, out)
        elif name in _MOVE_OPS:
            c._propagate(name, args, kwargs, out)
        elif name == '__get__' and getattr(func, '__self__', None) in _PROPERTY_GETTERS:
            mark = c._mark_of(args[0] if args else None)
            if mark is not None:
                c._mark(out, mark.norm, mark.max_count)
        elif name in _CAT_OPS:
            c._propagate_cat(_arg(args, kwargs, 0, 'tensors', ()), out)
        elif name in _REDUCE_OPS:
            c._propagate_reduce(name, args, out)
        elif name == 'pad':
            mode = _arg(args, kwargs, 2, 'mode', 'constant')
            value = _arg(args, kwargs, 3, 'value', None)
            if mode == 'constant' and not value:
                c._propagate(name, args, kwargs, out)
        elif name == 'interpolate':
            if _arg(args, kwargs, 3, 'mode', 'nearest') in ('nearest', 'nearest-exact'):
                c._propagate(name, args, kwargs, out)
        return out


class SOPCounter:
    """Count dense MACs, firing rates, SOPs and energy of every layer of a (spiking) model.

    Example::

        counter = SOPCounter(model)
        for x in batches:
            with counter.measure(num_images=x.shape[0]):
                model(x)
        report = counter.report()
        print(report.table())

    Args:
        model (nn.Module): The model (its neurons must be mmspike neurons).
        time_steps (int, optional): T of the model, used to express FLOPs per time step.
            Defaults to the first integer attribute ``T`` of a sub-module (the backbone), else 1.
        e_mac (float): Energy of a MAC in pJ. Defaults to 4.6.
        e_ac (float): Energy of an accumulate in pJ. Defaults to 0.9.
        strict (bool): Raise when a spike operand does not hold non-negative integer counts
            within the bound (instead of warning and counting it as real-valued). Defaults to False.
        tol (float): Tolerance of that check. Defaults to 1e-3.
    """

    def __init__(self, model: nn.Module, time_steps: Optional[int] = None,
                 e_mac: float = E_MAC_PJ, e_ac: float = E_AC_PJ, strict: bool = False,
                 tol: float = 1e-3) -> None:
        if e_mac < 0 or e_ac < 0:
            raise ValueError(f'energies must be >= 0, got e_mac={e_mac}, e_ac={e_ac}')
        self.model = model
        self.time_steps = time_steps if time_steps is not None else find_time_steps(model)
        if not (isinstance(self.time_steps, int) and self.time_steps >= 1):
            raise ValueError(f'time_steps must be an integer >= 1, got {self.time_steps!r}')
        self.e_mac = float(e_mac)
        self.e_ac = float(e_ac)
        self.strict = strict
        self.tol = tol
        self.layers: 'OrderedDict[str, LayerStats]' = OrderedDict()
        self.num_images = 0
        self.neurons = NeuronFiringRecorder(model, on_output=self._on_neuron_output)
        self._marks: Dict[int, _Mark] = {}
        self._stack: List[list] = []
        self._loose_counters: Dict[str, int] = {}
        self._batch = 0
        self._warned = set()
        self._active = False
        self._sparse_depth = 0

    # ------------------------------------------------------------------ control
    def reset(self) -> None:
        self.layers.clear()
        self.num_images = 0
        self.neurons.reset()

    @contextmanager
    def measure(self, num_images: int) -> Iterator['SOPCounter']:
        """Count everything the model runs inside the block, for ``num_images`` images."""
        if not (isinstance(num_images, int) and num_images >= 1):
            raise ValueError(f'num_images must be an integer >= 1, got {num_images!r}')
        if self._active:
            raise RuntimeError('SOPCounter.measure blocks cannot be nested')
        handles = []
        sparse_types = _sparse_conv_types()
        for name, m in self.model.named_modules():
            handles.append(m.register_forward_pre_hook(self._push_hook(name)))
            handles.append(m.register_forward_hook(self._pop_hook, always_call=True))
            if sparse_types and isinstance(m, sparse_types):
                handles.append(m.register_forward_pre_hook(self._enter_sparse))
                handles.append(m.register_forward_hook(self._sparse_hook(name), always_call=True))
        self._stack, self._marks, self._batch, self._active = [], {}, num_images, True
        self._sparse_depth = 0
        self._loose_counters = {}
        self.neurons.start()
        try:
            with _SOPMode(self):
                yield self
        finally:
            self.neurons.stop()
            for h in handles:
                h.remove()
            self._stack, self._marks, self._active = [], {}, False
        self.num_images += num_images

    # ------------------------------------------------------------------ hooks
    def _push_hook(self, name: str):

        def hook(module, args):
            self._stack.append([name, module, {}])

        return hook

    def _pop_hook(self, module, args, output):
        if self._stack and self._stack[-1][1] is module:
            self._stack.pop()

    def _enter_sparse(self, module, args):
        self._sparse_depth += 1

    def _sparse_hook(self, name: str):

        def hook(module, args, output):
            self._sparse_depth -= 1
            if args and hasattr(output, 'indices') and hasattr(args[0], 'indices'):
                self._count_sparse(name, module, args[0], output)

        return hook

    def _on_neuron_output(self, name: str, module: nn.Module, output: Tensor) -> None:
        self._mark(output, module.norm, neuron_max_count(module))

    # ------------------------------------------------------------------ marks
    def _mark(self, t: Any, norm: float, max_count: Optional[float]) -> None:
        if isinstance(t, (tuple, list)):
            for x in t:
                self._mark(x, norm, max_count)
            return
        if not isinstance(t, Tensor) or not t.is_floating_point():
            return
        key = id(t)
        marks = self._marks

        def forget(_ref, key=key, marks=marks):
            m = marks.get(key)
            if m is not None and m.ref is _ref:
                del marks[key]

        self._marks[key] = _Mark(weakref.ref(t, forget), float(norm), max_count)

    def _mark_of(self, t: Any) -> Optional[_Mark]:
        if not isinstance(t, Tensor):
            return None
        m = self._marks.get(id(t))
        if m is not None and m.ref() is t:
            return m
        return None

    def _propagate(self, name: str, args, kwargs, out) -> None:
        mark = self._mark_of(args[0] if args else kwargs.get('input'))
        if mark is not None:
            self._mark(out, mark.norm, mark.max_count)

    def _propagate_cat(self, tensors, out) -> None:
        marks = [self._mark_of(t) for t in tensors] if isinstance(tensors, (list, tuple)) else []
        if marks and all(m is not None for m in marks) and \
                len({m.norm for m in marks}) == 1:
            bounds = [m.max_count for m in marks]
            self._mark(out, marks[0].norm, None if None in bounds else max(bounds))

    def _propagate_reduce(self, name: str, args, out) -> None:
        x = args[0] if args else None
        mark = self._mark_of(x)
        if mark is None or not isinstance(out, Tensor) or out.numel() == 0:
            return
        k = x.numel() / out.numel()  # elements summed into each output element
        bound = None if mark.max_count is None else mark.max_count * k
        self._mark(out, mark.norm * k if name == 'mean' else mark.norm, bound)

    # ------------------------------------------------------------------ counting
    def _layer_name(self, family: str, leaf_types: tuple) -> str:
        if self._stack:
            owner, module, counters = self._stack[-1]
        else:  # ops run outside any module of the model
            owner, module, counters = '', self.model, self._loose_counters
        idx = counters.get(family, 0)
        counters[family] = idx + 1
        if idx == 0 and leaf_types and isinstance(module, leaf_types) and owner:
            return owner
        return f'{owner}.{family}_{idx}' if owner else f'{family}_{idx}'

    def _layer_time_steps(self, x: Tensor) -> int:
        T, B = self.time_steps, self._batch
        if T > 1 and x.dim() >= 1 and (x.shape[0] == T * B or
                                        (x.dim() >= 2 and x.shape[0] == T and x.shape[1] == B)):
            return T
        return 1

    def _spike_count(self, layer: str, x: Tensor, mark: _Mark) -> Optional[float]:
        """Integer spike count of ``x`` (checked), or None if the values are no spike counts."""
        counts = x.detach().double() * mark.norm
        bad = None
        if counts.numel():
            if (counts - counts.round()).abs().max().item() > self.tol:
                bad = 'non-integer'
            elif counts.min().item() < -self.tol:
                bad = 'negative'
            elif mark.max_count is not None and counts.max().item() > mark.max_count + self.tol:
                bad = f'above the bound {mark.max_count}'
        if bad is not None:
            msg = (f'the input of {layer!r} was marked as spikes (norm {mark.norm}) but holds '
                   f'{bad} counts; counting it as real-valued')
            if self.strict:
                raise RuntimeError(msg)
            if layer not in self._warned:
                warnings.warn(msg)
                self._warned.add(layer)
            return None
        return float(counts.sum().item())

    def _count(self, op: str, args, kwargs, out) -> None:
        if not isinstance(out, Tensor):
            return
        if op in _CONV_OPS or op in _CONV_T_OPS:
            x, w = _arg(args, kwargs, 0, 'input'), _arg(args, kwargs, 1, 'weight')
            k = math.prod(w.shape[2:])
            if op in _CONV_OPS:
                macs = out.numel() * w.shape[1] * k
            else:
                macs = x.numel() * w.shape[1] * k
            family, leaf = 'conv', (nn.modules.conv._ConvNd, )
            operands = [(x, 'input')]
        elif op == 'linear':
            x, w = _arg(args, kwargs, 0, 'input'), _arg(args, kwargs, 1, 'weight')
            macs = out.numel() * w.shape[-1]
            family, leaf = 'linear', (nn.Linear, )
            operands = [(x, 'input')]
        elif op == 'einsum':
            eq = args[0]
            ops = list(args[1]) if len(args) == 2 and isinstance(args[1], (list, tuple)) \
                else list(args[1:])
            if len(ops) != 2:
                if 'einsum' not in self._warned:
                    warnings.warn(f'einsum with {len(ops)} operands is not counted')
                    self._warned.add('einsum')
                return
            x, w = ops
            macs = _einsum_macs(eq, x, w, out)
            family, leaf = 'einsum', ()
            operands = [(x, 'left'), (w, 'right')]
        else:  # matmul family
            if op == '__rmatmul__':
                x, w = args[1], args[0]
            else:
                x, w = _arg(args, kwargs, 0, 'input'), _arg(args, kwargs, 1, 'other')
            if not (isinstance(x, Tensor) and isinstance(w, Tensor)):
                return
            macs = out.numel() * x.shape[-1]
            family, leaf = 'matmul', ()
            operands = [(x, 'left'), (w, 'right')]
        name = self._layer_name(family, leaf)
        st = self.layers.get(name)
        if st is None:
            st = self.layers[name] = LayerStats(
                name=name, op=op.strip('_').replace('rmatmul', 'matmul'),
                time_steps=self._layer_time_steps(x), input_shape=tuple(x.shape),
                output_shape=tuple(out.shape))
        st.calls += 1
        st.macs += macs
        # The spike operand fires the accumulations; the other operand plays the weights.
        spikes, numel, which = None, 0, ''
        for t, role in operands:
            mark = self._mark_of(t)
            if mark is not None:
                spikes = self._spike_count(name, t, mark)
                if spikes is not None:
                    numel, which = t.numel(), role
                    break
        if spikes is None:
            st.real_macs += macs
        else:
            st.spike_macs += macs
            st.spikes += spikes
            st.spike_numel += numel
            st.sops += (spikes / numel if numel else 0.0) * macs
            st.spike_operand = st.spike_operand or which

    def _count_sparse(self, name: str, module: nn.Module, x, out) -> None:
        """One spconv conv call: rulebook pairs from the geometry, exact SOPs of spike inputs."""
        feats = x.features
        geometry = None
        if getattr(module, 'inverse', False):  # the inverted conv's geometry, from its rulebook
            geometry = getattr(x, 'indice_dict', {}).get(module.indice_key)
        fanout = sparse_conv_fanout(module, x.indices, out.indices, out.spatial_shape, geometry)
        pairs = float(fanout.sum().item())
        macs = pairs * module.in_channels * module.out_channels
        st = self.layers.get(name)
        if st is None:
            st = self.layers[name] = LayerStats(
                name=name, op=f'sparse_conv{x.indices.shape[1] - 1}d', time_steps=1,
                input_shape=tuple(feats.shape), output_shape=tuple(out.features.shape))
        st.calls += 1
        st.macs += macs
        mark = self._mark_of(feats)
        spikes = self._spike_count(name, feats, mark) if mark is not None else None
        if spikes is None:
            st.real_macs += macs
            return
        per_site = (feats.detach().double() * mark.norm).sum(1)
        st.spike_macs += macs
        st.spikes += spikes
        st.spike_numel += feats.numel()
        st.sops += float((per_site * fanout.to(per_site)).sum().item()) * module.out_channels
        st.spike_operand = st.spike_operand or 'input'

    # ------------------------------------------------------------------ report
    def report(self) -> 'SOPReport':
        """Per-image results of everything measured so far."""
        if self.num_images == 0:
            raise RuntimeError('nothing measured: run the model inside SOPCounter.measure() first')
        n = self.num_images
        layers = []
        for st in self.layers.values():
            if st.spike_macs and st.real_macs:
                kind = 'mixed'
            elif st.spike_macs:
                kind = 'spike'
            else:
                kind = 'real'
            sops = st.sops / n
            mac_ops = st.real_macs / n
            layers.append(OrderedDict(
                name=st.name, op=st.op, input=kind, time_steps=st.time_steps,
                input_shape=list(st.input_shape), output_shape=list(st.output_shape),
                calls_per_image=st.calls / n,
                flops=st.macs / n / st.time_steps,
                firing_rate=(st.spikes / st.spike_numel) if st.spike_numel else None,
                spike_operand=st.spike_operand or None,
                sops=sops, mac_ops=mac_ops,
                energy_pj=self.e_ac * sops + self.e_mac * mac_ops))
        neurons = []
        for ns in self.neurons.stats.values():
            d = ns.to_dict()
            d['spikes_per_image'] = ns.spikes / n
            neurons.append(d)
        dense = sum(st.macs for st in self.layers.values()) / n
        sops = sum(d['sops'] for d in layers)
        mac_ops = sum(d['mac_ops'] for d in layers)
        spike_numel = sum(ns.numel for ns in self.neurons.stats.values())
        totals = OrderedDict(
            num_layers=len(layers),
            # besides the first layer: heads fed by membranes, convs fed by BN outputs with no
            # neuron in between (re-parameterisable pairs); counted as executed, as MACs
            real_input_layers=sum(d['input'] != 'spike' for d in layers),
            dense_macs=dense,
            sops=sops,
            mac_ops=mac_ops,
            energy_mj=sum(d['energy_pj'] for d in layers) * 1e-9,
            ac_energy_mj=self.e_ac * sops * 1e-9,
            mac_energy_mj=self.e_mac * mac_ops * 1e-9,
            ann_energy_mj=self.e_mac * dense * 1e-9,
            neuron_spikes=sum(ns.spikes for ns in self.neurons.stats.values()) / n,
            neuron_firing_rate=(sum(ns.spikes for ns in self.neurons.stats.values())
                                / spike_numel) if spike_numel else None)
        meta = OrderedDict(num_images=n, time_steps=self.time_steps, e_mac_pj=self.e_mac,
                           e_ac_pj=self.e_ac, units=dict(
                               flops='dense MACs per image and time step',
                               sops='synaptic accumulates per image (fr * T * flops)',
                               mac_ops='MACs per image of real-valued-input layers (T * flops)',
                               energy_pj='pJ per image', energy_mj='mJ per image',
                               firing_rate='mean integer spike count per input element'))
        return SOPReport(layers=layers, neurons=neurons, totals=totals, meta=meta)


def _sparse_conv_types() -> tuple:
    """spconv's conv base class if spconv is loaded (a model holding spconv modules has loaded
    it; the counter never imports spconv itself)."""
    import sys
    conv = sys.modules.get('spconv.pytorch.conv')
    return (conv.SparseConvolution, ) if conv is not None else ()


def _site_keys(indices: Tensor, shape: Sequence[int]) -> Tensor:
    key = indices[:, 0].long()
    for d, size in enumerate(shape):
        key = key * int(size) + indices[:, d + 1].long()
    return key


def sparse_conv_fanout(module: nn.Module, in_indices: Tensor, out_indices: Tensor,
                       out_shape: Sequence[int], geometry: Any = None) -> Tensor:
    """For every input site of an spconv conv, the number of output sites it feeds.

    Pairs follow the conv geometry: submanifold convs pair sites ``k - (K - 1) // 2`` dilations
    apart (the active set is kept), regular convs pair input ``o * stride - pad + k * dil`` with
    output ``o``, inverse convs are the regular conv they invert with the roles swapped.
    Their sum is the size of spconv's rulebook. ``geometry`` (an inverse conv's: the inverted
    conv's rulebook record, with ``ksize``, ``stride``, ``padding``, ``dilation``) is required for
    inverse convs, whose own attributes do not hold the stride they undo.
    """
    ndim = in_indices.shape[1] - 1
    inverse = bool(getattr(module, 'inverse', False))
    src = module
    if inverse:
        if geometry is None or not hasattr(geometry, 'stride'):
            raise ValueError(f'inverse sparse conv (indice_key {module.indice_key!r}): the '
                             'rulebook of the conv it inverts is not in the input')
        src = geometry
    ks = [int(k) for k in _tuple(getattr(src, 'ksize', None) or module.kernel_size, ndim)]
    stride = [int(v) for v in _tuple(src.stride, ndim)]
    pad = [int(v) for v in _tuple(src.padding, ndim)]
    dil = [int(v) for v in _tuple(src.dilation, ndim)]
    subm = bool(getattr(module, 'subm', False))
    out_keys, _ = torch.sort(_site_keys(out_indices, out_shape))
    grid = torch.stack(torch.meshgrid(*[torch.arange(k) for k in ks], indexing='ij'), -1)
    offsets = grid.reshape(-1, ndim).to(in_indices.device)
    fanout = torch.zeros(in_indices.shape[0], dtype=torch.long, device=in_indices.device)
    site = in_indices[:, 1:].long()
    for off in offsets:
        off = off.long()
        if subm:  # output o = i - (k - c) * dil
            cand = site - (off - torch.tensor([(k - 1) // 2 for k in ks], device=off.device)) \
                * torch.tensor(dil, device=off.device)
            ok = torch.ones(site.shape[0], dtype=torch.bool, device=site.device)
        elif inverse:  # the inverted conv's input: o = i * stride - pad + k * dil
            cand = site * torch.tensor(stride, device=off.device) \
                - torch.tensor(pad, device=off.device) + off * torch.tensor(dil, device=off.device)
            ok = torch.ones(site.shape[0], dtype=torch.bool, device=site.device)
        else:  # i = o * stride - pad + k * dil  ->  o = (i + pad - k * dil) / stride
            num = site + torch.tensor(pad, device=off.device) \
                - off * torch.tensor(dil, device=off.device)
            st = torch.tensor(stride, device=off.device)
            ok = (num % st == 0).all(1)
            cand = torch.div(num, st, rounding_mode='floor')
        shape = torch.tensor([int(v) for v in out_shape], device=site.device)
        ok &= ((cand >= 0) & (cand < shape)).all(1)
        if not bool(ok.any()):
            continue
        keys = _site_keys(torch.cat([in_indices[ok, :1].long(), cand[ok]], 1), out_shape)
        pos = torch.searchsorted(out_keys, keys).clamp(max=max(out_keys.numel() - 1, 0))
        hit = out_keys[pos] == keys if out_keys.numel() else torch.zeros_like(keys, dtype=bool)
        fanout[torch.nonzero(ok).flatten()[hit]] += 1
    return fanout


def _tuple(v, n: int) -> tuple:
    return tuple(v) if isinstance(v, (list, tuple)) else (v, ) * n


def find_time_steps(model: nn.Module) -> int:
    """The ``T`` attribute of the first sub-module that has an integer one (1 if none)."""
    for m in model.modules():
        T = getattr(m, 'T', None)
        if isinstance(T, int) and not isinstance(T, bool) and T >= 1:
            return T
    return 1


def count_sops(model: nn.Module, *inputs, num_images: Optional[int] = None,
               **kwargs) -> 'SOPReport':
    """One-shot :class:`SOPCounter` run: ``model(*inputs)`` under the counter.

    ``num_images`` defaults to the first dimension of the first input; other keyword arguments go
    to :class:`SOPCounter`.
    """
    if num_images is None:
        first = inputs[0]
        if isinstance(first, Tensor):
            num_images = int(first.shape[0])
        elif hasattr(first, 'batch_size') and hasattr(first, 'indices'):  # SparseConvTensor
            num_images = int(first.batch_size)
        else:  # a list of samples (point clouds)
            num_images = len(first)
    counter = SOPCounter(model, **kwargs)
    with torch.no_grad(), counter.measure(num_images):
        model(*inputs)
    return counter.report()


@dataclass
class SOPReport:
    """Per-image SOP / energy results: ``layers`` and ``neurons`` (lists of dicts), ``totals``
    and ``meta`` (T, energies, number of images, units)."""
    layers: List[dict]
    neurons: List[dict]
    totals: dict
    meta: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return OrderedDict(meta=self.meta, totals=self.totals, layers=self.layers,
                           neurons=self.neurons)

    def dump_json(self, path: str) -> None:
        with open(path, 'w') as f:
            json.dump(self.to_dict(), f, indent=2)

    CSV_FIELDS = ('name', 'op', 'input', 'time_steps', 'input_shape', 'output_shape', 'flops',
                  'firing_rate', 'sops', 'mac_ops', 'energy_pj')

    def dump_csv(self, path: str) -> None:
        with open(path, 'w', newline='') as f:
            w = csv.writer(f)
            w.writerow(self.CSV_FIELDS)
            for d in self.layers:
                w.writerow(['' if d[k] is None else
                            ('x'.join(map(str, d[k])) if isinstance(d[k], list) else d[k])
                            for k in self.CSV_FIELDS])
            t = self.totals
            w.writerow(['TOTAL', '', '', self.meta.get('time_steps', ''), '', '',
                        t['dense_macs'], t['neuron_firing_rate'], t['sops'], t['mac_ops'],
                        t['energy_mj'] * 1e9])

    def table(self, max_name: int = 48) -> str:
        head = (f"{'layer':<{max_name}} {'op':<8} {'in':<5} {'T':>2} {'MMACs/T':>10} "
                f"{'fr':>7} {'MSOPs':>10} {'MMAC ops':>10} {'uJ':>9}")
        lines = [head, '-' * len(head)]
        for d in self.layers:
            name = d['name'] if len(d['name']) <= max_name else '...' + d['name'][-max_name + 3:]
            fr = '' if d['firing_rate'] is None else f"{d['firing_rate']:.4f}"
            lines.append(f"{name:<{max_name}} {d['op']:<8} {d['input']:<5} {d['time_steps']:>2} "
                         f"{d['flops'] / 1e6:>10.3f} {fr:>7} {d['sops'] / 1e6:>10.3f} "
                         f"{d['mac_ops'] / 1e6:>10.3f} {d['energy_pj'] * 1e-6:>9.3f}")
        t, m = self.totals, self.meta
        fr = t['neuron_firing_rate']
        lines += ['-' * len(head),
                  f"images: {m['num_images']}  T: {m['time_steps']}  E_MAC: {m['e_mac_pj']} pJ  "
                  f"E_AC: {m['e_ac_pj']} pJ  layers: {t['num_layers']}",
                  f"dense MACs: {t['dense_macs'] / 1e9:.4f} G   SOPs: {t['sops'] / 1e9:.4f} G   "
                  f"MAC ops (real-valued inputs): {t['mac_ops'] / 1e9:.4f} G",
                  f"energy: {t['energy_mj']:.4f} mJ/image (AC {t['ac_energy_mj']:.4f} + MAC "
                  f"{t['mac_energy_mj']:.4f})   same network as an ANN: "
                  f"{t['ann_energy_mj']:.4f} mJ",
                  f"neurons: {len(self.neurons)}   spikes/image: {t['neuron_spikes']:.4g}   "
                  f"mean firing rate: {'n/a' if fr is None else f'{fr:.4f}'}"]
        real = [d['name'] for d in self.layers if d['input'] != 'spike']
        if len(real) > 1:  # worth a look: e.g. conv pairs with BN but no neuron in between
            lines.append(f'real-valued inputs (MACs) in {len(real)} layers: '
                         + ', '.join(real[:4]) + (', ...' if len(real) > 4 else ''))
        return '\n'.join(lines)

    def plot(self, path: str) -> None:
        """PNG with the firing rate of each layer's input and its energy (matplotlib, Agg)."""
        import matplotlib
        matplotlib.use('Agg', force=False)
        import matplotlib.pyplot as plt

        names = [d['name'] for d in self.layers]
        x = list(range(len(names)))
        fr = [d['firing_rate'] or 0.0 for d in self.layers]
        energy = [d['energy_pj'] * 1e-6 for d in self.layers]
        colors = ['tab:blue' if d['input'] == 'spike' else
                  ('tab:red' if d['input'] == 'real' else 'tab:purple') for d in self.layers]
        width = max(8.0, 0.16 * len(names) + 2)
        fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(width, 8), sharex=True)
        ax1.bar(x, fr, color=colors)
        ax1.set_ylabel('input firing rate\n(mean spike count / element)')
        ax1.set_title(f"{self.totals['energy_mj']:.4f} mJ/image, "
                      f"{self.totals['sops'] / 1e9:.3f} GSOPs, T={self.meta['time_steps']} "
                      '(blue: spike-fed AC, red: real-valued MAC)')
        ax2.bar(x, energy, color=colors)
        ax2.set_ylabel('energy per image (uJ)')
        ax2.set_xticks(x)
        ax2.set_xticklabels(names, rotation=90, fontsize=max(3, min(8, 600 // max(len(names), 1))))
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)

    def dump(self, out_dir: str, stem: str = 'sops') -> Dict[str, str]:
        """Write ``<stem>.json``, ``<stem>.csv`` and ``<stem>.png`` into ``out_dir``."""
        paths = {ext: osp.join(out_dir, f'{stem}.{ext}') for ext in ('json', 'csv', 'png')}
        self.dump_json(paths['json'])
        self.dump_csv(paths['csv'])
        self.plot(paths['png'])
        return paths
