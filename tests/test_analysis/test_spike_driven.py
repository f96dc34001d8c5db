import pytest
import torch
from torch import nn

from mmspike.analysis.spike_driven import check_spike_driven
from mmspike.models.backbones import SpikingConvNet
from mmspike.models.layers import SpikeDrivenAttention
from mmspike.models.neurons import MultiSpike


@pytest.mark.parametrize('neuron', [dict(type='MultiSpike', max_spikes=4),
                                    dict(type='ILIF', max_spikes=2),
                                    dict(type='MultiSpike', max_spikes=3, norm=3),
                                    dict(type='MultiSpike', max_spikes=4, round_mode='half_even'),
                                    dict(type='ILIF', max_spikes=2, round_mode='half_even'),
                                    dict(type='MultiSpike', max_spikes=4,
                                         round_mode='floor_plus_half')])
def test_convnet_both_modes_agree(neuron):
    torch.manual_seed(0)
    model = SpikingConvNet(in_channels=1, T=2, neuron=neuron).eval()
    batches = [((torch.randn(3, 1, 8, 8) * 3, ), 3), ((torch.randn(2, 1, 8, 8) * 3, ), 2)]
    result = check_spike_driven(model, batches)
    assert result['passed'] and result['max_abs_diff'] == 0.0
    assert result['num_images'] == 5 and result['num_neurons'] == 9
    assert result['binary_spikes'] == result['integer_spikes'] > 0
    # the integer sums are those of the SOP report (per image there)
    assert result['report'].totals['neuron_spikes'] * 5 == pytest.approx(result['binary_spikes'])
    assert all(r['match'] and r['train_ok'] for r in result['neurons'])
    # modes are restored afterwards
    assert not any(m.spike_driven for m in model.modules() if isinstance(m, MultiSpike))


def test_attention_counts_by_hand():
    torch.manual_seed(1)
    attn = SpikeDrivenAttention(16, num_heads=2, value_ratio=2).eval()
    x = torch.randn(1, 2, 16, 3, 3) * 3
    with torch.no_grad():
        s = attn.head_neuron(x)
    result = check_spike_driven(attn, [((x, ), 2)])
    rows = {r['name']: r for r in result['neurons']}
    # head neuron (D=4, norm=4): its binary spikes are its integer counts
    assert rows['head_neuron']['binary_spikes'] == int((s * 4).sum().round())
    assert result['passed']


def test_detects_a_difference():

    class Noisy(nn.Module):

        def __init__(self):
            super().__init__()
            self.n = MultiSpike()
            self.drop = nn.Dropout(0.5)  # left in training mode: outputs differ between runs

        def forward(self, x):
            return self.drop(self.n(x))

    result = check_spike_driven(Noisy(), [((torch.rand(1, 4, 64) * 4, ), 4)])
    assert not result['passed'] and result['max_abs_diff'] > 0
    assert result['binary_spikes'] == result['integer_spikes']  # the neuron itself agrees


def test_bad_models():
    with pytest.raises(ValueError, match='no integer neurons'):
        check_spike_driven(nn.Linear(2, 2), [((torch.zeros(1, 2), ), 1)])
    with pytest.raises(ValueError, match='no input batches'):
        check_spike_driven(MultiSpike(round_mode='half_even'), [])
