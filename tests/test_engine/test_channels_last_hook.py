import os.path as osp

import torch
from mmengine.config import Config
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.runner import Runner

from mmspike.engine.hooks import ChannelsLastHook

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO = osp.join(ROOT, 'configs', 'mmpretrain', 'spiking-convnet_digits.py')


def test_model_trains_channels_last_from_a_config(tmp_path):
    assert MMENGINE_HOOKS.get('mmspike.ChannelsLastHook') is ChannelsLastHook
    cfg = Config.fromfile(DEMO)
    cfg.work_dir = str(tmp_path)
    cfg.custom_hooks = [dict(type='mmspike.ChannelsLastHook')]
    cfg.train_cfg = dict(by_epoch=False, max_iters=3, val_interval=1000)
    cfg.default_hooks.checkpoint = None
    cfg.log_level = 'WARNING'
    runner = Runner.from_cfg(cfg)
    convs = [m for m in runner.model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(c.weight.is_contiguous() for c in convs)
    before = {id(p): p.detach().clone() for p in runner.model.parameters()}
    outputs = []
    handle = convs[-1].register_forward_hook(lambda m, a, out: outputs.append(out))
    runner.train()
    handle.remove()
    for c in convs:
        assert c.weight.is_contiguous(memory_format=torch.channels_last)
        if c.weight.shape[1] > 1:  # with one input channel both formats are the same strides
            assert not c.weight.is_contiguous()
    assert outputs and all(o.is_contiguous(memory_format=torch.channels_last) for o in outputs)
    # the optimizer built before the hook ran kept the same parameters and trained them
    opt_params = {id(p) for g in runner.optim_wrapper.optimizer.param_groups for p in g['params']}
    assert opt_params == set(before)
    assert any(not torch.equal(p.detach(), before[id(p)]) for c in convs for p in c.parameters())
