"""Check that spike-driven (binary) inference reproduces integer-trained inference exactly.

In spike-driven mode (:func:`mmspike.models.neurons.set_spike_driven`) every integer neuron emits
its count ``s`` as ``D`` binary spikes of an IF soft-reset neuron over ``D`` virtual steps and the
next layer sums them. :func:`check_spike_driven` runs a model in both modes on the same inputs and
compares

* every output (the maximum absolute difference must be 0),
* per neuron, the integer spike sum that the SOP report counts in integer mode with the number of
  binary spikes the neuron actually emitted in spike-driven mode (``binary_spike_count``),
* per call, that the emitted train (``last_binary``, ``[T * D, ...]``) is binary and sums to the
  integer output.
"""
from collections import OrderedDict
from typing import Callable, Iterable, List, Optional, Tuple

import torch
from torch import Tensor, nn

from mmspike.models.neurons import IntegerNeuron, set_spike_driven
from .firing import integer_count
from .sops import SOPCounter


def _binary_train_hook(stats: dict, name: str) -> Callable:

    def hook(module: IntegerNeuron, args, output: Tensor) -> None:
        train = module.last_binary
        st = stats[name]
        st['calls'] += 1
        ok = train is not None and train.shape[0] == output.shape[0] * module.max_spikes
        if ok:
            ok = bool(((train == 0) | (train == 1)).all())
            # output * norm carries float noise for norms like 3; counts differ by >= 1 if wrong
            emitted = float(train.sum(dtype=torch.float64))
            ok = ok and abs(emitted - integer_count(output, module.norm)) < 0.5
        st['train_ok'] = st['train_ok'] and ok
        module.last_binary = None  # checked; free the T*D-step train

    return hook


def check_spike_driven(model: nn.Module, batches: Iterable[Tuple[tuple, int]],
                       forward: Optional[Callable] = None, atol: float = 0.0) -> dict:
    """Run ``model`` in integer and in spike-driven mode on the same batches and compare.

    Args:
        model (nn.Module): Model in eval mode. Every ``round_mode`` of its integer neurons has
            a binary IF expansion (:func:`~mmspike.models.neurons.expand_to_binary`).
        batches (Iterable[tuple[tuple, int]]): ``(args, num_images)`` per batch; the model is
            called as ``forward(*args)``. Consumed once, kept for the second pass.
        forward (callable, optional): Defaults to ``model``.
        atol (float): Largest output difference that passes. Defaults to 0.
    Returns:
        dict: ``max_abs_diff``, ``integer_spikes`` (SOP-report sums), ``binary_spikes`` (emitted),
        per-neuron ``neurons`` rows, ``passed`` and the SOP ``report`` of the integer pass.
    """
    forward = forward or model
    neurons = [(n, m) for n, m in model.named_modules() if isinstance(m, IntegerNeuron)]
    if not neurons:
        raise ValueError('the model has no integer neurons: nothing to check')
    batches = list(batches)
    if not batches:
        raise ValueError('no input batches given')
    previous = [m.spike_driven for _, m in neurons]

    set_spike_driven(model, False)
    counter = SOPCounter(model)
    ref_outputs: List[List[Tensor]] = []
    with torch.no_grad():
        for args, n in batches:
            with counter.measure(num_images=n):
                ref_outputs.append(_tensors(forward(*args)))
    report = counter.report()

    set_spike_driven(model, True)  # also resets binary_spike_count
    train_stats = OrderedDict((name, dict(calls=0, train_ok=True)) for name, _ in neurons)
    handles = [m.register_forward_hook(_binary_train_hook(train_stats, name))
               for name, m in neurons]
    max_diff, shapes_ok = 0.0, True
    try:
        with torch.no_grad():
            for (args, _), ref in zip(batches, ref_outputs):
                out = _tensors(forward(*args))
                if len(out) != len(ref) or any(a.shape != b.shape for a, b in zip(out, ref)):
                    shapes_ok = False
                    continue
                for a, b in zip(out, ref):
                    if a.numel():
                        max_diff = max(max_diff, float((a.double() - b.double()).abs().max()))
        binary = {name: m.binary_spike_count for name, m in neurons}
    finally:
        for h in handles:
            h.remove()
        for (_, m), mode in zip(neurons, previous):
            m.spike_driven = mode
            m.last_binary = None

    integer = {d['name']: float(round(d['spikes'])) for d in report.neurons}
    rows = []
    for name, m in neurons:
        rows.append(OrderedDict(
            name=name, max_spikes=m.max_spikes, norm=m.norm, integer_spikes=integer[name],
            # integer sums are float64 sums of s / norm times norm: exact up to rounding noise
            binary_spikes=binary[name], match=abs(integer[name] - binary[name]) < 0.5,
            train_ok=train_stats[name]['train_ok'] and train_stats[name]['calls'] > 0))
    total_int = sum(r['integer_spikes'] for r in rows)
    total_bin = sum(r['binary_spikes'] for r in rows)
    passed = (shapes_ok and max_diff <= atol and all(r['match'] and r['train_ok'] for r in rows))
    return OrderedDict(
        passed=passed, max_abs_diff=max_diff, atol=atol, outputs_same_shape=shapes_ok,
        num_images=report.meta['num_images'], num_neurons=len(rows),
        integer_spikes=total_int, binary_spikes=total_bin, neurons=rows, report=report)


def _tensors(out) -> List[Tensor]:
    from .config_utils import flatten_outputs
    return [t.detach() for t in flatten_outputs(out)]
