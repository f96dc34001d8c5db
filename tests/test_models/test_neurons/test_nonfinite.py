"""Non-finite input currents stop the run, for every neuron and execution path (issue 17 item 3).

Policy (README "Reliability"): a NaN or +-Inf input current is an error, never a spike count.
Every mmspike neuron raises ``FloatingPointError`` naming itself when it sees one, on the fast path
(C kernel, torch ops, fused spike convs), the plain path and in spike-driven mode; checking can be
turned off per model with ``set_finite_check(model, False)`` (then what NaN becomes depends on the
path: NaN through the plain clamp, 0 spikes through a comparison or a code byte).
"""
import math

import pytest
import torch

from mmspike.models.execution import execution_mode
from mmspike.models.neurons import (ILIF, LIF, IntegerNeuron, MultiSpike, kernel_backend,
                                    set_finite_check, set_spike_driven)

BAD = [math.nan, math.inf, -math.inf]
NEURONS = {
    'MultiSpike': lambda: MultiSpike(max_spikes=4),
    'ILIF': lambda: ILIF(max_spikes=4, leak=0.25),
    'IntegerNeuron-hard-reset': lambda: IntegerNeuron(max_spikes=2, leak=0.5, reset='hard'),
    'LIF': lambda: LIF(tau=2.0),
}
# (execution path, fire backend, spike-driven)
MODES = [('fast', 'c', False), ('fast', 'torch', False), ('plain', None, False),
         ('fast', None, True)]


def current(T, bad, index=(0, 1, 2, 3, 4)):
    x = torch.randn(T, 2, 3, 5, 6) * 2
    x[index] = bad
    return x


@pytest.mark.parametrize('bad', BAD, ids=['nan', 'inf', '-inf'])
@pytest.mark.parametrize('mode', MODES, ids=['fast-c', 'fast-torch', 'plain', 'spike-driven'])
@pytest.mark.parametrize('name', list(NEURONS))
@pytest.mark.parametrize('T', [1, 3])
def test_every_neuron_raises_on_nonfinite_current(name, mode, bad, T):
    path, backend, driven = mode
    neuron = NEURONS[name]()
    if driven and not isinstance(neuron, IntegerNeuron):
        pytest.skip('spike-driven mode is a mode of integer neurons')
    set_spike_driven(neuron, driven)
    x = current(T, bad, index=(T - 1, 1, 2, 3, 4))  # the last step: after any temporal loop
    for requires_grad in (False, True):
        with execution_mode(neuron, path), kernel_backend(neuron, backend):
            with pytest.raises(FloatingPointError, match='non-finite'):
                neuron(x.clone().requires_grad_(requires_grad))
        with execution_mode(neuron, path), kernel_backend(neuron, backend):
            neuron(torch.randn(T, 2, 3, 5, 6).requires_grad_(requires_grad))  # finite: fine


def test_error_names_the_neuron_and_counts():
    from mmspike.models.backbones import ESpikeFormer
    model = ESpikeFormer(arch='2m', T=1).eval()
    set_finite_check(model, True)
    x = torch.randn(1, 3, 32, 32)
    x[0, 0, 5, 5] = math.inf
    with torch.no_grad(), pytest.raises(FloatingPointError) as info:
        model(x)
    msg = str(info.value)
    assert 'non-finite' in msg and 'stages.0' in msg, msg  # the first neuron after the stem


@pytest.mark.parametrize('path', ['fast', 'plain'])
def test_one_inf_pixel_stops_an_espikeformer(path):
    """Fast path: the first neurons fire fused with their convs (spike_convs)."""
    from mmspike.models.backbones import ESpikeFormer
    model = ESpikeFormer(arch='2m', T=1).eval()
    x = torch.randn(2, 3, 32, 32)
    with execution_mode(model, path), torch.no_grad():
        model(x)  # finite input: fine
        x[1, 2, 7, 9] = math.inf
        with pytest.raises(FloatingPointError, match='non-finite'):
            model(x)


def test_nan_image_stops_a_lif_model_at_t4():
    from mmspike.models.backbones import MetaSpikeFormer
    model = MetaSpikeFormer(arch='15m', T=4).eval()
    x = torch.full((1, 3, 32, 32), math.nan)
    with torch.no_grad(), pytest.raises(FloatingPointError, match='non-finite'):
        model(x)


def test_nonfinite_weights_stop_training():
    """A diverged weight in training is caught at the next neuron, not turned into 0 spikes."""
    conv = torch.nn.Conv2d(3, 4, 3)
    neuron = LIF()
    with torch.no_grad():
        conv.weight[0, 0, 0, 0] = math.nan
    x = torch.randn(2, 1, 3, 8, 8)
    y = conv(x.flatten(0, 1)).unflatten(0, (2, 1))
    with pytest.raises(FloatingPointError, match='non-finite'):
        neuron(y)


def test_check_can_be_turned_off():
    neuron = MultiSpike()
    assert set_finite_check(neuron, False) == 1
    x = current(1, math.nan)
    assert neuron(x).shape == x.shape  # unchecked: no error
    assert set_finite_check(neuron, True) == 1
    with pytest.raises(FloatingPointError):
        neuron(x)


@pytest.mark.parametrize('backend', ['c', 'torch'])
@pytest.mark.parametrize('grad', [False, True])
def test_fused_pass_counts_exactly(backend, grad):
    """The fast path counts the non-finite inputs in its firing pass (the C kernel) or with one
    reduction (torch ops): the error gives the exact number, also for a fused spike conv."""
    from mmspike.models.layers import SpikeConvBN
    x = torch.randn(1, 2, 3, 80, 80) * 2  # several kernel chunks (16384 elements each)
    x.view(-1)[[0, 7, 16384, 16385, 38399]] = torch.tensor([math.nan, math.inf, -math.inf,
                                                             math.nan, math.inf])
    for module in (MultiSpike(max_spikes=4), SpikeConvBN(3, 4, neuron=dict(type='MultiSpike'))):
        with execution_mode(module, 'fast'), kernel_backend(module, backend):
            with pytest.raises(FloatingPointError, match=r'holds 5 non-finite'):
                module(x.clone().requires_grad_(grad))
