"""Every E-SpikeFormer / Meta-SpikeFormer / Spikformer V2 config under configs/mmpretrain builds
through MMEngine with the stock mmpretrain registry, has the expected parameter count, and trains
one iteration (optimizer wrapper from the config included) on a tiny random batch at 64x64.

Models above 40M parameters are built and counted at full size; their training step runs with the
same config but the backbone's widths shrunk (same family settings), to keep the test fast.
"""
import copy
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.utils import import_modules_from_strings
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import mmspike.classification  # noqa: F401
from mmspike.models.backbones import ESpikeFormer
from mmspike.models.neurons import IntegerNeuron
from mmspike.registry import MODELS as MMSPIKE_MODELS

CONFIG_DIR = Path(__file__).resolve().parents[2] / 'configs' / 'mmpretrain'
PREFIXES = ('e-spikeformer-', 'meta-spikeformer-', 'spikformer-v2-')
# Spikformer V2's self-supervised and CIFAR configs have their own tests (test_spikformer_v2_*).
CONFIGS = sorted(p.name for p in CONFIG_DIR.glob('*.py') if p.name.startswith(PREFIXES)
                 and '_mim-' not in p.name and '_cifar' not in p.name)

# Parameter counts with the 1000-class head(s); E-SpikeFormer and Meta-SpikeFormer equal upstream.
EXPECTED_PARAMS = {
    'e-spikeformer-2m': 2_702_048, 'e-spikeformer-5m': 5_105_608,
    'e-spikeformer-10m': 10_023_112, 'e-spikeformer-19m': 18_987_504,
    'e-spikeformer-83m': 83_015_952, 'e-spikeformer-173m': 171_740_714,
    # the released 83M file's 1.5C pre-mixer (+262,656 per block); the MAE encoder's C0 = 192
    'e-spikeformer-83m-released': 86_167_824, 'e-spikeformer-173m-c192': 171_579_824,
    'meta-spikeformer-15m': 15_112_208, 'meta-spikeformer-31m': 31_333_864,
    'meta-spikeformer-55m': 55_350_248,
    # + the 641,000-parameter distillation classifier
    'meta-spikeformer-55m-kd': 55_991_248,
    # Spikformer V2 (SCS conv blocks C -> 4C -> C): 29.11M / 51.55M as the paper's table
    'spikformer-v2-8-384': 29_111_272, 'spikformer-v2-8-512': 51_545_064,
    'spikformer-v2-8-768': 115_508_200,
}
TINY_TEACHER = dict(
    type='ImageClassifier',
    backbone=dict(type='mmspike.SpikingConvNet', arch='tiny'),
    neck=dict(type='mmspike.SpikeGlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=1000, in_channels=128))


@pytest.fixture(scope='module', autouse=True)
def quiet_mmpretrain_scope():
    init_default_scope('mmpretrain')
    # The optimizer constructors log one line per parameter at INFO.
    MMLogger.get_instance('test_mmpretrain_configs', log_level='WARNING')


def _model_key(name: str) -> str:
    key = name.split('_')[0]
    # E-SpikeFormer large models always carry both classifiers; -kd only adds the teacher.
    return key.replace('-kd', '') if key.startswith('e-spikeformer') else key


def _load(name: str) -> Config:
    cfg = Config.fromfile(str(CONFIG_DIR / name))
    assert cfg.custom_imports == dict(imports=['mmspike.classification'], allow_failed_imports=False)
    import_modules_from_strings(**cfg.custom_imports)
    model = cfg.model
    model.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    if 'teacher' in model:
        # The recipe's teacher (CAFormer-B36 via timm) is swapped for a tiny one here.
        assert model.teacher.type == 'TimmClassifier'
        assert model.teacher.model_name.startswith('caformer_b36')
        model.teacher = TINY_TEACHER
    return cfg


def _train_one_iter(model, cfg):
    optim_wrapper = build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper))
    data = dict(inputs=[torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8) for _ in range(2)],
                data_samples=[DataSample().set_gt_label(i) for i in (3, 7)])
    before = [p.detach().clone() for p in model.parameters() if p.requires_grad]
    model.train()
    log = model.train_step(data, optim_wrapper)
    after = [p.detach() for p in model.parameters() if p.requires_grad]
    assert torch.isfinite(log['loss'])
    assert sum(not torch.equal(a, b) for a, b in zip(before, after)) > len(before) // 2
    return log


def test_all_variants_have_configs():
    names = set(CONFIGS)
    for arch in ('2m', '5m', '10m', '19m', '83m', '173m'):
        for d in ('1x4', '1x8'):
            assert any(n.startswith(f'e-spikeformer-{arch}_{d}_') for n in names), (arch, d)
    assert 'e-spikeformer-173m_1x8_8xb64_in1k-384px.py' in names
    assert any(n.startswith('e-spikeformer-83m-kd') for n in names)
    assert {f'meta-spikeformer-{a}_t1_8xb128_in1k.py' for a in ('15m', '31m', '55m')} <= names
    assert len([n for n in names if n.startswith('spikformer-v2-')]) == 3


@pytest.mark.parametrize('name', CONFIGS)
def test_config_builds_counts_and_trains(name):
    torch.manual_seed(0)
    cfg = _load(name)
    model = MODELS.build(copy.deepcopy(cfg.model))
    params = sum(p.numel() for p in model.parameters())
    assert params == EXPECTED_PARAMS[_model_key(name)], params
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'

    d = 8 if '1x8' in name else 4
    neurons = [m for m in model.modules() if isinstance(m, IntegerNeuron)]
    if name.startswith('e-spikeformer'):
        assert neurons and all(n.max_spikes == d for n in neurons)
        # raw integer spikes into the classifier (large family: into the distillation one)
        head_neuron = getattr(model.head, 'kd_neuron', None) or model.neck.neuron
        assert head_neuron.norm == 1
        if '384px' in name:
            assert cfg.train_dataloader.dataset.pipeline[1].scale == 384
    else:
        assert not neurons  # LIF neurons

    if params > 40e6:
        # Same recipe, narrower backbone of the same family: exercises head, augments, optimizer.
        del model
        backbone = cfg.model.backbone
        cls = MMSPIKE_MODELS.get(backbone.type.split('.')[-1])
        if issubclass(cls, ESpikeFormer):
            small = dict(cls.arch_settings[backbone.arch])
            small['channels'] = (16, 32, 64, 64)[:len(small['channels'])]
            backbone.arch = small
        else:
            backbone.arch = dict(embed_dims=64, depth=2)
        cfg.model.head.in_channels = 64
        model = MODELS.build(copy.deepcopy(cfg.model))
    log = _train_one_iter(model, cfg)
    if cfg.model.head.type == 'mmspike.SpikeDistillClsHead':
        assert {'loss_cls', 'loss_distill'} <= set(log)
