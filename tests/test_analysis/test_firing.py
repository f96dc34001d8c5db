import pytest
import torch
from torch import nn

from mmspike.analysis import NeuronFiringRecorder, neuron_group
from mmspike.models.neurons import LIF, MultiSpike


def test_recorder_counts_integers():
    model = nn.ModuleDict(dict(a=MultiSpike(max_spikes=4), b=LIF(tau=1.0)))
    x = torch.tensor([[[0.4, 0.6, 2.5, 9.0]]])  # [T=1, B=1, 4]
    with NeuronFiringRecorder(model) as rec:
        model['a'](x)  # counts 0, 1, 3, 4 (half up), outputs count / 4
        model['a'](x)
        model['b'](x)  # fires where x >= 1: 2 of 4
    a, b = rec.stats['a'], rec.stats['b']
    assert (a.spikes, a.numel, a.calls) == (16, 8, 2) and a.firing_rate == 2.0
    assert a.max_count == 4 and a.norm == 4
    assert (b.spikes, b.numel) == (2, 4) and b.max_count == 1
    assert rec.total_spikes == 18
    model['a'](x)  # hooks are gone after the block
    assert a.calls == 2
    rec.reset()
    assert a.spikes == 0 and a.firing_rate == 0.0


def test_groups():
    assert neuron_group('backbone.stages.2.1.attn.q_neuron') == 'backbone.stages.2'
    assert neuron_group('neck.neuron') == 'neck'
    assert neuron_group('neuron') == 'neuron'
    assert neuron_group('backbone.stages.2.1.mlp', prefix_depth=2) == 'backbone.stages'
    assert neuron_group('backbone.x.y', prefixes=['backbone.x', 'backbone']) == 'backbone.x'
    assert neuron_group('backbone.xy.z', prefixes=['backbone.x', 'backbone']) == 'backbone'
    assert neuron_group('neck.n', prefixes=['backbone']) is None
    with pytest.raises(ValueError, match='prefix_depth'):
        neuron_group('a.b', prefix_depth=0)

    model = nn.Sequential(nn.Sequential(MultiSpike(), MultiSpike()), MultiSpike())
    with NeuronFiringRecorder(model) as rec:
        model(torch.full((1, 1, 2), 1.0))
    rates = rec.group_rates()
    # '0.0' fires 1 per element (output 0.25), '0.1' then fires 0 and '1' fires 0; '0.0' and
    # '0.1' are grouped by their first numeric part '0'
    assert rates == {'0': pytest.approx(0.5), '1': 0.0}
