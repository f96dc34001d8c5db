"""get_sops.py, spike_driven_check.py and benchmark.py on the demo config (spiking CNN, digits)."""
import csv
import importlib.util
import json
import os.path as osp

import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO = osp.join(ROOT, 'configs', 'mmpretrain', 'spiking-convnet_digits.py')


def _load_tool(name):
    path = osp.join(ROOT, 'tools', 'analysis_tools', f'{name}.py')
    spec = importlib.util.spec_from_file_location(f'_tool_{name}', path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


get_sops = _load_tool('get_sops')
spike_driven_check = _load_tool('spike_driven_check')
benchmark = _load_tool('benchmark')


@pytest.fixture(scope='module')
def demo_checkpoint(tmp_path_factory):
    """Demo model with BN scales raised so that every stage fires (random init barely does)."""
    from mmspike.analysis.config_utils import build_model, load_config
    torch.manual_seed(1)
    model = build_model(load_config(DEMO))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(1.0, 4.0)
                m.bias.uniform_(-0.5, 1.0)
    path = str(tmp_path_factory.mktemp('ckpt') / 'demo.pth')
    torch.save(dict(state_dict=model.state_dict()), path)
    return path


def test_get_sops_on_demo_config(tmp_path, demo_checkpoint):
    out = str(tmp_path / 'sops')
    report = get_sops.main([DEMO, demo_checkpoint, '--num-images', '20', '--batch-size', '8',
                            '--out-dir', out])
    files = {ext: osp.join(out, f'sops.{ext}') for ext in ('json', 'csv', 'png')}
    assert all(osp.isfile(f) for f in files.values())
    data = json.load(open(files['json']))
    assert data['meta']['num_images'] == 20 and data['meta']['time_steps'] == 1
    layers = {d['name']: d for d in data['layers']}
    # the stem (real pixels, 1 -> 32 channels, 3x3 on 8x8) and the head (time-mean of
    # membranes) are MAC layers, every conv of the stages is fed by spikes
    assert layers['backbone.stem.conv']['input'] == 'real'
    assert layers['backbone.stem.conv']['flops'] == 1 * 32 * 9 * 64
    assert layers['head.fc']['input'] == 'real' and layers['head.fc']['flops'] == 128 * 10
    spiking = [d for n, d in layers.items() if n.startswith('backbone.stages')]
    assert len(spiking) == 9 and all(d['input'] == 'spike' for d in spiking)
    assert all(d['firing_rate'] > 0 for d in spiking)
    for d in spiking:  # SOPs = fr * T * FLOPs, energy = E_AC * SOPs
        assert d['sops'] == pytest.approx(d['firing_rate'] * 1 * d['flops'])
        assert d['energy_pj'] == pytest.approx(0.9 * d['sops'])
    t = data['totals']
    assert t['energy_mj'] == pytest.approx(sum(d['energy_pj'] for d in data['layers']) * 1e-9)
    assert t['sops'] == pytest.approx(report.totals['sops'])
    rows = list(csv.DictReader(open(files['csv'])))
    assert len(rows) == len(data['layers']) + 1 and rows[-1]['name'] == 'TOTAL'

    # The integer spike sums of the SOP report are the binary spikes emitted in spike-driven mode
    result = spike_driven_check.main([DEMO, demo_checkpoint, '--num-images', '20',
                                      '--batch-size', '8', '--out', str(tmp_path / 'sd.json')])
    assert result['passed'] and result['max_abs_diff'] == 0.0
    assert result['binary_spikes'] == pytest.approx(t['neuron_spikes'] * 20)
    assert result['binary_spikes'] > 1000
    assert json.load(open(tmp_path / 'sd.json'))['binary_spikes'] == result['binary_spikes']


def test_tools_with_random_input(tmp_path, capsys):
    report = get_sops.main([DEMO, '--random-input', '1,8,8', '--num-images', '3',
                            '--out-dir', str(tmp_path), '--e-mac', '1', '--e-ac', '0.5'])
    assert report.meta['num_images'] == 3 and report.meta['e_mac_pj'] == 1.0
    assert 'energy:' in capsys.readouterr().out
    result = spike_driven_check.main([DEMO, '--random-input', '1,8,8', '--num-images', '3'])
    assert result['passed']
    with pytest.raises(SystemExit):  # bad shape is a usage error
        get_sops.main([DEMO, '--random-input', '1,8', '--num-images', '0'])


def test_spike_driven_check_every_round_mode(tmp_path):
    # half even (tie-aware IF threshold) and floor(u + 0.5) in the working dtype are realised
    # by binary IF spikes too
    for mode in ('half_even', 'floor_plus_half'):
        result = spike_driven_check.main([
            DEMO, '--random-input', '1,8,8', '--num-images', '2', '--cfg-options',
            f'model.backbone.neuron.round_mode={mode}'])
        assert result['passed'] and result['max_abs_diff'] == 0.0 and result['binary_spikes'] > 0


def test_benchmark_demo_config(tmp_path):
    out = str(tmp_path / 'bench.json')
    results = benchmark.main([DEMO, '--input-shape', '1,8,8', '--batch-size', '4', '--warmup',
                              '1', '--iters', '2', '--out', out])
    assert [r['phase'] for r in results] == ['infer', 'train']
    for r in results:
        assert r['throughput_img_s'] > 0 and r['latency_ms_mean'] > 0
        assert r['iters'] == 2 and r['peak_rss_mb'] > 0
        assert r['throughput_img_s'] == pytest.approx(4 / (r['latency_ms_mean'] / 1e3))
    saved = json.load(open(out))
    assert saved['params'] > 0 and saved['input_shape'] == [1, 8, 8]
    with pytest.raises(SystemExit):
        benchmark.main([DEMO, '--phases', 'infer,fly'])


def test_tools_on_e_spikeformer_10m(tmp_path):
    """The ImageNet 10M config (random weights, BN statistics calibrated so that neurons fire) at a
    reduced input size: attention matmuls counted, every layer but the stem fed by spikes, and the
    spike-driven check agrees with the SOP report's spike sums."""
    cfg = osp.join(ROOT, 'configs', 'mmpretrain', 'e-spikeformer-10m_1x4_8xb128_in1k.py')
    common = ['--random-input', '3,64,64', '--num-images', '1', '--calibrate-bn', '2']
    report = get_sops.main([cfg, *common, '--strict', '--out-dir', str(tmp_path)])
    layers = report.layers
    assert sum(d['op'] == 'matmul' for d in layers) == 16
    assert [d['name'] for d in layers if d['input'] != 'spike'] == ['backbone.stages.0.0.conv']
    assert layers[-1]['name'] == 'head.fc' and layers[-1]['firing_rate'] > 0
    assert report.totals['neuron_firing_rate'] > 0.05
    result = spike_driven_check.main([cfg, *common])
    assert result['passed'] and result['max_abs_diff'] == 0.0
    assert result['binary_spikes'] == pytest.approx(report.totals['neuron_spikes'])
    # the config fires half to even, as upstream's base family (tie-aware IF in spike-driven mode)
    from mmspike.analysis.config_utils import load_config
    assert load_config(cfg).model.backbone.neuron.round_mode == 'half_even'


def test_checkpoint_must_match(tmp_path, demo_checkpoint):
    state = torch.load(demo_checkpoint, weights_only=True)['state_dict']
    state['backbone.extra.weight'] = torch.zeros(1)
    del state['head.fc.bias']
    bad = str(tmp_path / 'bad.pth')
    torch.save(dict(state_dict=state), bad)
    with pytest.raises(ValueError, match=r"missing keys \['head.fc.bias'\], unexpected keys "
                       r"\['backbone.extra.weight'\]"):
        get_sops.main([DEMO, bad, '--num-images', '1'])
