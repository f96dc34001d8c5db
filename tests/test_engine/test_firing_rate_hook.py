import glob
import json
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.runner import Runner

from mmspike.engine.hooks import FiringRateHook
from mmspike.models.neurons import BaseNeuron

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO = osp.join(ROOT, 'configs', 'mmpretrain', 'spiking-convnet_digits.py')


def make_runner(tmp_path, hook_cfg):
    cfg = Config.fromfile(DEMO)
    cfg.work_dir = str(tmp_path)
    cfg.custom_hooks = [hook_cfg]
    cfg.val_dataloader.batch_size = 150
    cfg.test_dataloader = cfg.val_dataloader
    cfg.default_hooks.checkpoint = None
    cfg.log_level = 'WARNING'
    runner = Runner.from_cfg(cfg)
    torch.manual_seed(0)
    with torch.no_grad():  # random BN scales so that every stage fires
        for m in runner.model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(1.0, 4.0)
                m.bias.uniform_(-0.5, 1.0)
    return runner


def expected_rates(runner, group_of):
    """Firing rates computed directly: spikes (output * norm) over elements, per group."""
    model = runner.model
    model.eval()
    sums = {}
    handles = []
    for name, m in model.named_modules():
        if isinstance(m, BaseNeuron):

            def hook(mod, args, out, name=name):
                g = group_of(name)
                s, n = sums.get(g, (0.0, 0))
                sums[g] = (s + float(out.double().sum()) * mod.norm, n + out.numel())

            handles.append(m.register_forward_hook(hook))
    with torch.no_grad():
        for data in runner.val_dataloader:
            model.val_step(data)
    for h in handles:
        h.remove()
    return {g: s / n for g, (s, n) in sums.items()}


def test_hook_logs_stage_rates(tmp_path):
    assert MMENGINE_HOOKS.get('mmspike.FiringRateHook') is FiringRateHook
    runner = make_runner(tmp_path, dict(type='mmspike.FiringRateHook'))
    hook = [h for h in runner.hooks if isinstance(h, FiringRateHook)][0]
    metrics = runner.val()
    assert 'accuracy/top1' in metrics

    expected = expected_rates(runner, lambda n: '.'.join(n.split('.')[:3]))
    assert set(expected) == {'backbone.stages.0', 'backbone.stages.1', 'backbone.stages.2'}
    rates = hook.last_rates
    assert list(rates) == ['backbone.stages.0', 'backbone.stages.1', 'backbone.stages.2', 'all']
    for g, r in expected.items():
        assert rates[g] == pytest.approx(r, rel=1e-9)
        assert runner.message_hub.get_scalar(f'val/firing_rate/{g}').current() == \
            pytest.approx(r, rel=1e-9)
    assert all(r > 0 for r in rates.values())
    assert min(rates.values()) < rates['all'] < max(rates.values())
    # LoggerHook passed the values to the visualizer backends (local json)
    scalars = glob.glob(osp.join(str(tmp_path), '*', 'vis_data', 'scalars.json'))
    logged = [json.loads(line) for line in open(scalars[0])]
    assert any(d.get('firing_rate/backbone.stages.0') == pytest.approx(
        expected['backbone.stages.0'], rel=1e-4) for d in logged)
    # hooks are removed after the epoch: a forward pass leaves the recorder untouched
    assert hook._recorder is None


def test_hook_prefixes_per_neuron_and_test_mode(tmp_path):
    runner = make_runner(tmp_path, dict(type='mmspike.FiringRateHook',
                                        prefixes=['backbone.stages.0', 'backbone.stages'],
                                        modes=['test'], log_name='fr'))
    hook = [h for h in runner.hooks if isinstance(h, FiringRateHook)][0]
    runner.test()

    def group_of(n):
        return 'backbone.stages.0' if n.startswith('backbone.stages.0.') else 'backbone.stages'

    expected = expected_rates(runner, group_of)
    assert set(hook.last_rates) == {'backbone.stages.0', 'backbone.stages', 'all'}
    for g, r in expected.items():
        assert runner.message_hub.get_scalar(f'test/fr/{g}').current() == pytest.approx(r)

    runner2 = make_runner(tmp_path / 'b', dict(type='mmspike.FiringRateHook', per_neuron=True))
    hook2 = [h for h in runner2.hooks if isinstance(h, FiringRateHook)][0]
    runner2.val()
    neurons = [n for n, m in runner2.model.named_modules() if isinstance(m, BaseNeuron)]
    assert list(hook2.last_rates) == neurons + ['all']


def test_hook_arguments():
    with pytest.raises(ValueError, match='modes'):
        FiringRateHook(modes=['train'])
    with pytest.raises(ValueError, match='prefix_depth'):
        FiringRateHook(prefix_depth=0)
    with pytest.raises(ValueError, match='log_name'):
        FiringRateHook(log_name='a/b')
