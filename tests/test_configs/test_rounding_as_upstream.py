"""The detection and segmentation configs fire as upstream's detection and segmentation code:
``torch.round(torch.clamp(u, 0, 4))`` (round half to even) in the SDEFormer / SDT-V3 backbone, the
spiking FPN and the FPN head. With round-half-up a tie (u = k + 0.5) fired one spike more; at
512x512 that flipped spikes and the flagship's float32 outputs differed from upstream's by 12.9
(benchmarks/bench_detectors_vs_upstream.py; bit-identical with half to even)."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from mmspike.models.neurons import build_neuron

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted([p for p in (ROOT / 'configs' / 'mmdet').glob('*spikeformer*.py')
                  if 'meta-spikeformer' not in p.name]  # Meta-SpikeFormer: LIF, no rounding
                 + list((ROOT / 'configs' / 'mmseg').glob('*e-spikeformer*.py')))


def _integer_neurons(node, path='model'):
    if isinstance(node, dict):
        if node.get('type') in ('MultiSpike', 'mmspike.MultiSpike'):
            yield path, node
        for k, v in node.items():
            yield from _integer_neurons(v, f'{path}.{k}')
    elif isinstance(node, (list, tuple)):
        for i, v in enumerate(node):
            yield from _integer_neurons(v, f'{path}[{i}]')


@pytest.mark.parametrize('config', CONFIGS, ids=lambda p: p.name)
def test_neurons_round_half_to_even_as_upstream(config):
    cfg = Config.fromfile(str(config))
    neurons = list(_integer_neurons(cfg.model.to_dict()))
    assert neurons, f'{config.name}: no integer neurons found in the model config'
    u = torch.tensor([[0.5, 1.5, 2.5, 3.5, 2.4999, 5.0]])
    for path, spec in neurons:
        fired = build_neuron(spec)(u) * build_neuron(spec).norm
        assert torch.equal(fired, torch.round(torch.clamp(u, 0, 4))), (path, spec)
