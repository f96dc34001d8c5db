import csv
import json

import pytest
import torch
from torch import nn

from mmspike.analysis import SOPCounter, count_sops
from mmspike.analysis.sops import _einsum_macs
from mmspike.models.layers import SpikeDrivenAttention, to_time_sequence
from mmspike.models.neurons import LIF, MultiSpike


class HandNet(nn.Module):
    """T=2 network whose every count is worked out by hand in ``test_hand_computation``."""

    def __init__(self):
        super().__init__()
        self.T = 2
        self.conv1 = nn.Conv2d(1, 1, 1, bias=False)
        self.neuron1 = MultiSpike(max_spikes=4)  # norm 4: outputs are counts / 4
        self.conv2 = nn.Conv2d(1, 3, 1, bias=False)
        self.neuron2 = MultiSpike(max_spikes=2, norm=1)
        self.head = nn.Linear(3, 2)
        with torch.no_grad():
            self.conv1.weight.fill_(1.0)
            self.conv2.weight.copy_(torch.tensor([1.0, 0.5, -1.0]).view(3, 1, 1, 1))

    def forward(self, x):
        x = to_time_sequence(x, self.T)  # [T, B, 1, 2, 2]
        T, B = x.shape[:2]
        y = self.conv1(x.flatten(0, 1)).view(T, B, 1, 2, 2)
        s1 = self.neuron1(y)
        z = self.conv2(s1.flatten(0, 1)).view(T, B, 3, 2, 2)
        s2 = self.neuron2(z)
        q = s2.flatten(3).transpose(-2, -1)  # [T, B, N=4, C=3]
        attn = q @ q.transpose(-2, -1)  # spike-fed matmul
        pooled = s2.mean(0).flatten(2).mean(2)  # mean over T and tokens of spikes: [B, 3]
        return self.head(pooled), attn


def test_hand_computation():
    model = HandNet().eval()
    x = torch.tensor([[0.5, 1.5], [2.6, 7.0]]).view(1, 1, 2, 2)
    report = count_sops(model, x, strict=True)
    layers = {d['name']: d for d in report.layers}
    assert list(layers) == ['conv1', 'conv2', 'matmul_0', 'head']

    # conv1: fed real pixels. 1x1 conv, 1 -> 1 channel, 4 pixels: 4 MACs per step, T=2.
    c1 = layers['conv1']
    assert (c1['input'], c1['time_steps'], c1['flops']) == ('real', 2, 4)
    assert c1['firing_rate'] is None and c1['sops'] == 0
    assert c1['mac_ops'] == 8 and c1['energy_pj'] == pytest.approx(4.6 * 8)

    # neuron1 (D=4, norm=4) fires round_half_up(clamp(x, 0, 4)) = 1, 2, 3, 4 -> 10 spikes per
    # step on 4 elements: the rate is the integer count 2.5 although the outputs are count / 4.
    c2 = layers['conv2']
    assert (c2['input'], c2['time_steps'], c2['flops']) == ('spike', 2, 12)  # 1 * 3 * 4
    assert c2['firing_rate'] == pytest.approx(2.5)
    assert c2['sops'] == pytest.approx(2.5 * 2 * 12)  # fr * T * FLOPs = 60
    assert c2['energy_pj'] == pytest.approx(0.9 * 60)

    # conv2 -> channels 1 * s1, 0.5 * s1, -1 * s1 with s1 = .25, .5, .75, 1; neuron2 (D=2, norm=1)
    # fires 0,1,1,1 | 0,0,0,1 | 0,0,0,0: 4 spikes on 12 elements per step.
    m = layers['matmul_0']
    assert (m['input'], m['time_steps'], m['flops']) == ('spike', 2, 4 * 4 * 3)
    assert m['firing_rate'] == pytest.approx(4 / 12)
    assert m['spike_operand'] == 'left'
    assert m['sops'] == pytest.approx(4 / 12 * 2 * 48)  # 32

    # head on the mean over T and tokens of the spikes: it sums 2 * 4 = 8 counts per image into
    # 3 inputs, each count costing one accumulate per output (2): 16 SOPs, as 8 per-token heads.
    h = layers['head']
    assert (h['input'], h['time_steps'], h['flops']) == ('spike', 1, 6)
    assert h['firing_rate'] == pytest.approx(8 / 3)
    assert h['sops'] == pytest.approx(16)

    t = report.totals
    assert t['sops'] == pytest.approx(60 + 32 + 16)
    assert t['mac_ops'] == pytest.approx(8)
    assert t['dense_macs'] == pytest.approx(8 + 24 + 96 + 6)
    assert t['energy_mj'] == pytest.approx((4.6 * 8 + 0.9 * 108) * 1e-9)
    assert t['ann_energy_mj'] == pytest.approx(4.6 * 134 * 1e-9)
    # neuron totals: 10 + 4 spikes per step, T=2
    assert t['neuron_spikes'] == pytest.approx(28)
    neurons = {d['name']: d for d in report.neurons}
    assert neurons['neuron1']['firing_rate'] == pytest.approx(2.5)
    assert neurons['neuron2']['firing_rate'] == pytest.approx(1 / 3)


def test_energy_constants_and_batches():
    model = HandNet().eval()
    x = torch.tensor([[0.5, 1.5], [2.6, 7.0]]).view(1, 1, 2, 2)
    counter = SOPCounter(model, e_mac=1.0, e_ac=0.5)
    with torch.no_grad():
        for batch in (x, x.repeat(3, 1, 1, 1)):  # 1 + 3 identical images
            with counter.measure(num_images=batch.shape[0]):
                model(batch)
    report = counter.report()
    assert report.meta['num_images'] == 4
    assert report.totals['sops'] == pytest.approx(108)  # per image, as for one image
    assert report.totals['energy_mj'] == pytest.approx((1.0 * 8 + 0.5 * 108) * 1e-9)
    # the head counts per image although it ran on batches of 1 and 3
    assert {d['name']: d['calls_per_image'] for d in report.layers}['head'] == pytest.approx(0.5)


def test_lif_firing_rate_is_fraction_of_ones():
    lif = LIF(tau=1.0)  # no leak: fires where the input reaches 1

    class Net(nn.Module):

        def __init__(self):
            super().__init__()
            self.lif = lif
            self.fc = nn.Linear(4, 5)

        def forward(self, x):
            return self.fc(self.lif(x))

    x = torch.tensor([[[0.2, 1.5, 3.0, 0.9]], [[1.0, 0.0, 0.0, 0.0]]])  # [T=2, B=1, 4]
    report = count_sops(Net(), x, num_images=1, time_steps=2, strict=True)
    fc = report.layers[0]
    assert fc['firing_rate'] == pytest.approx(3 / 8)
    assert fc['time_steps'] == 2 and fc['flops'] == 20
    assert fc['sops'] == pytest.approx(3 / 8 * 2 * 20)


@pytest.mark.parametrize('order', ['qk_first', 'kv_first'])
def test_attention_matmuls_are_counted(order):
    torch.manual_seed(0)
    attn = SpikeDrivenAttention(16, num_heads=2, value_ratio=2, order=order).eval()
    x = torch.randn(1, 2, 16, 3, 3) * 3  # T=1, B=2, N=9 tokens, d=8, d_v=16
    report = count_sops(attn, x, num_images=2, strict=True)
    layers = {d['name']: d for d in report.layers}
    assert set(layers) == {'q_conv.0', 'k_conv.0', 'v_conv.0', 'matmul_0', 'matmul_1',
                           'proj_conv.0'}
    neurons = {d['name']: d['firing_rate'] for d in report.neurons}
    N, d, dv, h = 9, 8, 16, 2
    m0, m1 = layers['matmul_0'], layers['matmul_1']
    if order == 'qk_first':  # Q K^T (Q fires), then (Q K^T) V (real x spikes: V fires)
        assert m0['flops'] == h * N * N * d and m1['flops'] == h * N * N * dv
        assert m0['firing_rate'] == pytest.approx(neurons['q_neuron'])
        assert m1['firing_rate'] == pytest.approx(neurons['v_neuron'])
        assert m1['spike_operand'] == 'right'
    else:  # K^T V (K fires), then Q (K^T V) (Q fires)
        assert m0['flops'] == h * d * N * dv and m1['flops'] == h * N * d * dv
        assert m0['firing_rate'] == pytest.approx(neurons['k_neuron'])
        assert m1['firing_rate'] == pytest.approx(neurons['q_neuron'])
    assert all(d['input'] == 'spike' for d in layers.values())
    assert layers['q_conv.0']['firing_rate'] == pytest.approx(neurons['head_neuron'])
    assert layers['proj_conv.0']['firing_rate'] == pytest.approx(neurons['attn_neuron'])
    assert layers['v_conv.0']['flops'] == 16 * 32 * 9


def test_tampered_spikes_are_caught():

    class Bad(nn.Module):

        def __init__(self):
            super().__init__()
            self.n = MultiSpike()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            s = self.n(x)
            s.mul_(0.3)  # in place: still marked as spikes, but no longer counts / 4
            return self.fc(s)

    x = torch.full((1, 1, 4), 2.0)
    with pytest.raises(RuntimeError, match="input of 'fc' was marked as spikes"):
        count_sops(Bad(), x, strict=True)
    with pytest.warns(UserWarning, match='counting it as real-valued'):
        report = count_sops(Bad(), x)
    assert report.layers[0]['input'] == 'real'


def test_einsum_and_mixed_ops():
    assert _einsum_macs('bhnd,bhmd->bhnm', torch.zeros(2, 3, 5, 4), torch.zeros(2, 3, 6, 4),
                        torch.zeros(2, 3, 5, 6)) == 2 * 3 * 5 * 6 * 4
    assert _einsum_macs('...nd,...md', torch.zeros(2, 5, 4), torch.zeros(2, 6, 4),
                        torch.zeros(2, 5, 6)) == 2 * 5 * 6 * 4

    class Net(nn.Module):

        def __init__(self):
            super().__init__()
            self.n = MultiSpike(max_spikes=4, norm=1)

        def forward(self, x):
            s = self.n(x)  # [T, B, N, C]
            pooled = torch.nn.functional.max_pool1d(s.flatten(0, 1).transpose(1, 2), 2)
            both = torch.cat([s, s], dim=-1)  # still spikes
            mixed = torch.cat([s, x], dim=-1)  # real values inside: not spikes
            return (torch.einsum('tbnc,tbmc->tbnm', both, both), pooled @ pooled.transpose(1, 2),
                    mixed @ mixed.transpose(-2, -1))

    x = torch.arange(24, dtype=torch.float32).view(1, 1, 6, 4) / 5
    report = count_sops(Net(), x, strict=True)
    kinds = [(d['name'], d['input']) for d in report.layers]
    assert kinds == [('einsum_0', 'spike'), ('matmul_0', 'spike'), ('matmul_1', 'real')]
    counts = Net().n(x)
    assert report.layers[0]['firing_rate'] == pytest.approx(counts.mean().item())
    assert report.layers[0]['flops'] == 6 * 6 * 8


def test_report_files(tmp_path):
    report = count_sops(HandNet().eval(), torch.rand(2, 1, 2, 2) * 4)
    paths = report.dump(str(tmp_path))
    data = json.loads(open(paths['json']).read())
    assert data['totals']['sops'] == pytest.approx(report.totals['sops'])
    assert [d['name'] for d in data['layers']] == ['conv1', 'conv2', 'matmul_0', 'head']
    rows = list(csv.DictReader(open(paths['csv'])))
    assert [r['name'] for r in rows] == ['conv1', 'conv2', 'matmul_0', 'head', 'TOTAL']
    assert float(rows[1]['sops']) == pytest.approx(report.layers[1]['sops'])
    assert open(paths['png'], 'rb').read(8) == b'\x89PNG\r\n\x1a\n'
    table = report.table()
    assert 'conv2' in table and 'energy:' in table


def test_bad_arguments():
    with pytest.raises(ValueError, match='num_images'):
        with SOPCounter(HandNet()).measure(num_images=0):
            pass
    with pytest.raises(RuntimeError, match='nothing measured'):
        SOPCounter(HandNet()).report()
    with pytest.raises(ValueError, match='energies'):
        SOPCounter(HandNet(), e_ac=-1)


def test_e_spikeformer_10m_macs_match_upstream_count():
    """Dense MACs of the 10M backbone at 224x224 with upstream's (Q K^T) V order: 4.249 G with the
    classifier (counted from the upstream code, design/upstream.md appendix)."""
    import copy

    from mmspike.models.backbones.e_spikeformer import ESpikeFormer
    arch = copy.deepcopy(ESpikeFormer.arch_settings['10m'])
    arch['transformer_block']['attn_cfg']['order'] = 'qk_first'
    report = count_sops(ESpikeFormer(arch).eval(), torch.randn(1, 3, 224, 224), strict=True)
    assert report.totals['dense_macs'] + 240 * 1000 == pytest.approx(4.249e9, abs=0.5e6)
    matmuls = [d for d in report.layers if d['op'] == 'matmul']
    assert len(matmuls) == 2 * 8 and all(d['input'] == 'spike' for d in matmuls)
    # stage 3: 8 heads, 196 tokens, d = 24, d_v = 96
    assert matmuls[0]['flops'] == 8 * 196 * 196 * 24
    assert matmuls[1]['flops'] == 8 * 196 * 196 * 96
    assert [d['input'] for d in report.layers].count('real') == 1  # only the stem conv
