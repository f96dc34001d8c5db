"""Per-neuron spike counting by forward hooks: the measurement shared by the SOP report, the
firing-rate hook and the spike-driven check.

A neuron's output is ``s / norm`` with ``s`` the integer spike count (binary for LIF), so the
counts are recovered exactly as ``output * norm``. The firing rate of a neuron is the mean integer
count per output element: ``D`` is already inside it (up to ``D`` spikes per element and step),
``T`` is not (every time step is an element).
"""
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Optional, Tuple

import torch
from torch import Tensor, nn

from mmspike.models.neurons import BaseNeuron, IntegerNeuron


def neuron_max_count(neuron: nn.Module) -> Optional[int]:
    """The most spikes one output element of ``neuron`` can carry per step (D; 1 for binary)."""
    if isinstance(neuron, IntegerNeuron):
        return neuron.max_spikes
    if isinstance(neuron, BaseNeuron):
        return 1  # LIF and other binary neurons
    return None


def named_neurons(model: nn.Module) -> List[Tuple[str, BaseNeuron]]:
    """``(name, module)`` of every mmspike neuron of ``model``, in registration order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, BaseNeuron)]


def integer_count(x: Tensor, norm: float) -> float:
    """The integer spike count held by the neuron output ``x = s / norm`` (exact in float64)."""
    return float(x.detach().sum(dtype=torch.float64).item() * norm)


@dataclass
class NeuronStats:
    """Spikes counted at one neuron over every call since the last reset.

    Attributes:
        name (str): Module name in the model.
        type (str): Neuron class name.
        norm (float): Output divisor of the neuron.
        max_count (int): D (1 for binary neurons).
        spikes (float): Sum of the integer counts emitted.
        numel (int): Output elements (all time steps, all images).
        calls (int): Forward calls.
    """
    name: str
    type: str
    norm: float
    max_count: Optional[int]
    spikes: float = 0.0
    numel: int = 0
    calls: int = 0

    @property
    def firing_rate(self) -> float:
        """Mean integer spike count per output element (0 if nothing was counted)."""
        return self.spikes / self.numel if self.numel else 0.0

    def to_dict(self) -> dict:
        return dict(name=self.name, type=self.type, norm=self.norm, max_count=self.max_count,
                    spikes=self.spikes, numel=self.numel, calls=self.calls,
                    firing_rate=self.firing_rate)


class NeuronFiringRecorder:
    """Counts the integer spikes every neuron of a model emits while it is active.

    Use as a context manager (hooks are removed on exit)::

        with NeuronFiringRecorder(model) as rec:
            model(x)
        rec.stats['backbone.stages.0.0.neuron'].firing_rate

    Args:
        model (nn.Module): The model whose :class:`~mmspike.models.neurons.BaseNeuron` modules
            are counted.
        on_output (callable, optional): Also called as ``on_output(name, module, output)`` for
            every neuron output (used by the SOP counter to mark spike tensors).
    """

    def __init__(self, model: nn.Module,
                 on_output: Optional[Callable[[str, nn.Module, Tensor], None]] = None) -> None:
        self.model = model
        self.on_output = on_output
        self.stats: 'OrderedDict[str, NeuronStats]' = OrderedDict()
        self._handles: list = []
        for name, m in named_neurons(model):
            self.stats[name] = NeuronStats(name=name, type=type(m).__name__, norm=m.norm,
                                           max_count=neuron_max_count(m))

    def reset(self) -> None:
        for s in self.stats.values():
            s.spikes, s.numel, s.calls = 0.0, 0, 0

    def _hook(self, name: str) -> Callable:

        def hook(module: nn.Module, args, output) -> None:
            if not isinstance(output, Tensor):
                raise TypeError(f'neuron {name!r} returned {type(output).__name__}, expected a '
                                'Tensor')
            st = self.stats[name]
            st.spikes += integer_count(output, module.norm)
            st.numel += output.numel()
            st.calls += 1
            if self.on_output is not None:
                self.on_output(name, module, output)

        return hook

    def start(self) -> 'NeuronFiringRecorder':
        if self._handles:
            raise RuntimeError('NeuronFiringRecorder is already recording')
        for name, m in named_neurons(self.model):
            self._handles.append(m.register_forward_hook(self._hook(name)))
        return self

    def stop(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def __enter__(self) -> 'NeuronFiringRecorder':
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def total_spikes(self) -> float:
        return sum(s.spikes for s in self.stats.values())

    def group_rates(self, prefix_depth: Optional[int] = None,
                    prefixes: Optional[Iterable[str]] = None) -> 'OrderedDict[str, float]':
        """Firing rates aggregated over groups of neurons (total spikes / total elements).

        Args:
            prefix_depth (int, optional): Group by the first ``prefix_depth`` dot-separated parts of
                the neuron name. None groups automatically: up to and including the first numeric
                part (``backbone.stages.2``), or the parent module when there is none.
            prefixes (Iterable[str], optional): Explicit groups; each neuron goes to the longest
                prefix it starts with, neurons matching none are left out. Overrides
                ``prefix_depth``.
        """
        spikes: Dict[str, float] = OrderedDict()
        numel: Dict[str, int] = {}
        prefixes = sorted(prefixes, key=len, reverse=True) if prefixes is not None else None
        for name, st in self.stats.items():
            if st.numel == 0:
                continue
            group = neuron_group(name, prefix_depth, prefixes)
            if group is None:
                continue
            spikes[group] = spikes.get(group, 0.0) + st.spikes
            numel[group] = numel.get(group, 0) + st.numel
        return OrderedDict((g, spikes[g] / numel[g]) for g in spikes)


def neuron_group(name: str, prefix_depth: Optional[int] = None,
                 prefixes: Optional[List[str]] = None) -> Optional[str]:
    """The group a neuron named ``name`` is aggregated into (see
    :meth:`NeuronFiringRecorder.group_rates`)."""
    if prefixes is not None:
        for p in prefixes:
            if name == p or name.startswith(p + '.') or p == '':
                return p
        return None
    parts = name.split('.')
    if prefix_depth is not None:
        if prefix_depth < 1:
            raise ValueError(f'prefix_depth must be >= 1, got {prefix_depth}')
        return '.'.join(parts[:prefix_depth])
    for i, p in enumerate(parts):
        if p.isdigit():
            return '.'.join(parts[:i + 1])
    return '.'.join(parts[:-1]) if len(parts) > 1 else name
