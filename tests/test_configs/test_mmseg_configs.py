"""The mmseg configs: every full config builds with the stock mmseg registry with the recipe of the
paper and a known parameter count; every ADE20K-sample config trains one iteration through
MMEngine's Runner on the real ADE20K sample (128x128 crops) and tests with sliding windows and
mmseg's IoUMetric; and for one config tools/train.py then tools/test.py, as subprocesses, report
the mIoU."""
import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmengine.utils import import_modules_from_strings
from mmseg.registry import MODELS

import mmspike.segmentation  # noqa: F401
from mmspike.models.neurons import IntegerNeuron

REPO = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO / 'configs' / 'mmseg'
DATA_ROOT = REPO / 'data' / 'ade20k_sample'
SPIKE_FPN_HEAD = 'mmspike.SpikeFPNHead'
FULL = {
    # config: (parameters with the 150-class heads, backbone, decode head type)
    'fpn_e-spikeformer-10m_4xb4-160k_ade20k-512x512.py': (11_353_334, '10m', SPIKE_FPN_HEAD),
    'fpn_e-spikeformer-19m_4xb4-160k_ade20k-512x512.py': (20_227_422, '19m', SPIKE_FPN_HEAD),
    'upernet_e-spikeformer-19m_4xb4-160k_ade20k-512x512.py': (47_922_420, '19m', 'UPerHead'),
}
SAMPLES = [n.replace('_4xb4-160k_ade20k-512x512.py', '_ade20k-sample.py') for n in FULL]


@pytest.fixture(autouse=True)
def mmseg_scope():
    init_default_scope('mmseg')


def _load(name: str) -> Config:
    cfg = Config.fromfile(str(CONFIG_DIR / name))
    assert cfg.custom_imports == dict(imports=['mmspike.segmentation'], allow_failed_imports=False)
    assert cfg.default_scope == 'mmseg'
    import_modules_from_strings(**cfg.custom_imports)
    return cfg


def test_every_config_has_a_sample_config():
    # (the digit-canvas learning check brings its own held-out data: tests/test_learning)
    names = {p.name for p in CONFIG_DIR.glob('*.py') if not p.name.endswith('_digits.py')}
    assert set(FULL) | set(SAMPLES) == names


@pytest.mark.parametrize('name', sorted(FULL))
def test_full_config_recipe_and_parameters(name):
    params, arch, head = FULL[name]
    cfg = _load(name)
    # 512x512 crops of ADE20K through mmseg's own pipeline, dataset and metric
    assert cfg.crop_size == (512, 512) and cfg.model.data_preprocessor.size == (512, 512)
    crop = [t for t in cfg.train_pipeline if t.type == 'RandomCrop']
    assert crop and crop[0].crop_size == (512, 512)
    assert cfg.train_dataloader.dataset.type == 'ADE20KDataset'
    assert cfg.train_dataloader.dataset.data_root == 'data/ade/ADEChallengeData2016'
    assert cfg.test_evaluator.type == 'IoUMetric'
    # 160k iterations of AdamW, lr 1e-3, batch 16 = 4 GPUs x 4
    assert cfg.train_dataloader.batch_size == 4 and '_4xb4-' in name
    assert cfg.train_cfg.max_iters == 160_000
    opt = cfg.optim_wrapper.optimizer
    assert (opt.type, opt.lr, opt.weight_decay) == ('AdamW', 1e-3, 0.005)
    assert [s.type for s in cfg.param_scheduler] == ['LinearLR', 'PolyLR']
    assert cfg.param_scheduler[-1].end == 160_000

    model = revert_sync_batchnorm(MODELS.build(copy.deepcopy(cfg.model)))
    assert sum(p.numel() for p in model.parameters()) == params
    assert model.backbone.arch['channels'] == \
        type(model.backbone).arch_settings[arch]['channels']
    assert model.backbone.T == 1 and model.backbone.out_strides == (4, 8, 16, 16)
    assert cfg.model.decode_head.type == head
    assert cfg.model.decode_head.num_classes == 150
    neurons = [m for m in model.modules() if isinstance(m, IntegerNeuron)]
    assert neurons and all((n.max_spikes, n.norm) == (4, 4.0) for n in neurons)
    if head == SPIKE_FPN_HEAD:
        # spiking all the way to the classifier: neurons in the neck and the head
        assert any(isinstance(m, IntegerNeuron) for m in model.neck.modules())
        assert isinstance(model.decode_head.out_neuron, IntegerNeuron)
        assert cfg.model.decode_head.feature_strides == [4, 8, 16, 16]
    else:
        assert type(model.neck).__name__ == 'TimeReduce'


@pytest.mark.parametrize('name', SAMPLES)
def test_sample_config_trains_and_tests_with_iou_metric(name, tmp_path):
    cfg = _load(name)
    assert cfg.model.test_cfg.mode == 'slide'
    for loader in ('train_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = str(DATA_ROOT)
    cfg.work_dir = str(tmp_path)
    cfg.train_cfg.max_iters = 1
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None  # tested once, below
    cfg.default_hooks.checkpoint = None
    cfg.log_level = 'WARNING'
    cfg.randomness = dict(seed=0)
    runner = Runner.from_cfg(cfg)
    before = [p.detach().clone() for p in runner.model.parameters()]
    runner.train()
    after = list(runner.model.parameters())
    assert sum(not torch.equal(a.detach(), b) for a, b in zip(after, before)) > len(before) // 2
    assert torch.isfinite(torch.tensor(runner.message_hub.get_scalar('train/loss').current()))
    metrics = runner.test()
    assert set(metrics) == {'aAcc', 'mIoU', 'mAcc'}
    assert 0.0 <= metrics['mIoU'] <= 100.0 and metrics['aAcc'] > 0


@pytest.mark.subprocess
def test_tools_train_then_test_report_miou(tmp_path):
    name = 'configs/mmseg/fpn_e-spikeformer-10m_ade20k-sample.py'
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore')
    run = dict(cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    train = subprocess.run(
        [sys.executable, 'tools/train.py', name, '--work-dir', str(tmp_path), '--cfg-options',
         'train_cfg.max_iters=2'], **run)
    assert train.returncode == 0, train.stderr[-3000:]
    ckpt = tmp_path / 'iter_2.pth'
    assert ckpt.is_file()
    out = tmp_path / 'metrics.json'
    test = subprocess.run(
        [sys.executable, 'tools/test.py', name, str(ckpt), '--work-dir', str(tmp_path),
         '--out', str(out)], **run)
    assert test.returncode == 0, test.stderr[-3000:]
    assert 'mIoU' in test.stdout
    metrics = json.loads(out.read_text())
    assert set(metrics) == {'aAcc', 'mIoU', 'mAcc'} and 0.0 <= metrics['mIoU'] <= 100.0
