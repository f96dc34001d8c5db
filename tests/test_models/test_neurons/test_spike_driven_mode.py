"""Spike-driven inference: the integer neuron equals D binary IF soft-reset spikes (Proposition 1)."""
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mmspike.models.backbones import SpikingConvNet
from mmspike.models.neurons import (ILIF, MultiSpike, expand_to_binary, integer_neurons,
                                    round_half_up, set_spike_driven, spike_driven)
from mmspike.models.neurons.base import ROUND_MODES

floats = st.floats(min_value=-6, max_value=14, allow_nan=False, width=32)
# values with exact ties at .5 and integer boundaries, where rounding bugs live
ties = st.integers(min_value=-8, max_value=24).map(lambda k: k / 2)


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.one_of(floats, ties), min_size=1, max_size=64),
       D=st.integers(min_value=1, max_value=8),
       dtype=st.sampled_from([torch.float32, torch.float16, torch.bfloat16, torch.float64]),
       round_mode=st.sampled_from(ROUND_MODES))
def test_binary_expansion_equals_integer_firing(values, D, dtype, round_mode):
    u = torch.tensor(values, dtype=torch.float64).to(dtype)
    binary = expand_to_binary(u, D, round_mode)
    assert binary.shape == (D, *u.shape)
    assert set(binary.unique().tolist()) <= {0.0, 1.0}
    c = u.clamp(0, D)
    expected = {'half_up': round_half_up(c.double()), 'half_even': torch.round(c.double()),
                'floor_plus_half': torch.floor(c + 0.5).double()}[round_mode]
    assert torch.equal(binary.double().sum(0), expected)
    assert torch.equal(binary.double().sum(0), MultiSpike(D, norm=1, round_mode=round_mode)(
        u.view(1, -1)).double().view(-1))
    # IF soft reset fires its spikes first, then stays silent (asynchronous-friendly pattern)
    assert torch.all(binary[1:] <= binary[:-1])


@settings(max_examples=100, deadline=None)
@given(values=st.lists(st.one_of(floats, ties), min_size=2, max_size=32),
       D=st.integers(min_value=1, max_value=8),
       dtype=st.sampled_from([torch.float32, torch.float16, torch.bfloat16]))
def test_neuron_modes_agree(values, D, dtype):
    x = torch.tensor(values, dtype=torch.float64).to(dtype).view(-1, 1)  # [T, 1]
    for neuron in (MultiSpike(max_spikes=D), ILIF(max_spikes=D),
                   MultiSpike(max_spikes=D, round_mode='half_even'),
                   ILIF(max_spikes=D, round_mode='half_even'),
                   MultiSpike(max_spikes=D, round_mode='floor_plus_half')):
        integer_out = neuron(x)
        with spike_driven(neuron):
            binary_out = neuron(x)
            train = neuron.last_binary
        assert torch.equal(integer_out, binary_out)
        assert train.shape == (x.shape[0] * D, 1)
        # sum over the D virtual steps of each real step gives the integer count
        assert torch.equal(train.view(x.shape[0], D, 1).sum(1) / neuron.norm, integer_out)
        assert neuron.binary_spike_count == int(round(float(integer_out.double().sum()
                                                                * neuron.norm)))
        assert not neuron.spike_driven  # the context manager restored the mode


@settings(max_examples=50, deadline=None)
@given(values=st.lists(floats, min_size=1, max_size=32),
       dtype=st.sampled_from([torch.float16, torch.bfloat16]))
def test_outputs_exact_integers_in_low_precision(values, dtype):
    x = torch.tensor(values).to(dtype).view(1, -1)
    out = MultiSpike(norm=1)(x)
    assert out.dtype == dtype
    assert torch.equal(out, torch.round(out)), out
    assert torch.equal(out.double(), round_half_up(x.double().clamp(0, 4)))


def test_amp_autocast_exact():
    x = torch.randn(1, 4, 16) * 3
    with torch.autocast('cpu', dtype=torch.bfloat16):
        y = torch.nn.functional.linear(x, torch.eye(16))
        out = MultiSpike(norm=1)(y)
    assert out.dtype == torch.bfloat16
    assert torch.equal(out, torch.round(out))


def test_whole_model_switch_same_downstream_result():
    torch.manual_seed(0)
    model = SpikingConvNet(in_channels=1, T=2).eval()
    x = torch.randn(3, 1, 8, 8)
    ref = model(x)[0]
    n = set_spike_driven(model, True)
    assert n == len(list(integer_neurons(model))) > 0
    out = model(x)[0]
    assert torch.allclose(out, ref, atol=1e-6, rtol=0)
    total = sum(m.binary_spike_count for m in integer_neurons(model))
    assert total > 0
    set_spike_driven(model, False)
    assert torch.equal(model(x)[0], ref)
