"""Spikformer V2 CIFAR-10/100 configs: the recipe they resolve to (the released Spikformer CIFAR
recipe, see configs/mmpretrain/_base_/spikformer-v2_cifar.py), the model, and one training
iteration of each through its own train pipeline and optimizer on real photos downscaled to
32x32. No CIFAR sample in the python-pickle layout is available (mmpretrain checks the md5 of
the full files), so the CIFAR dataset class itself only gets its missing-data error checked."""
import copy
from pathlib import Path

import mmcv
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.utils import import_modules_from_strings
from mmpretrain.registry import DATASETS, MODELS

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = {'cifar10': 10, 'cifar100': 100}
# SCS (stem strides 1, 1, 2, 2) + 4 encoder blocks of width 384 + the linear classifier; counted
# here (the paper's CIFAR model size is not available to check against).
PARAMS = {10: 21_639_130, 100: 21_673_780}
PHOTOS = sorted((ROOT / 'data' / 'cls_sample' / 'images').glob('*/*.*'))


@pytest.fixture(scope='module', autouse=True)
def mmpretrain_scope():
    init_default_scope('mmpretrain')


def load(name):
    cfg = Config.fromfile(str(ROOT / f'configs/mmpretrain/spikformer-v2-4-384_t4_1xb128_{name}.py'))
    import_modules_from_strings(**cfg.custom_imports)
    return cfg


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_cifar_recipe(name):
    cfg = load(name)
    assert cfg.model.backbone.arch == '4-384' and cfg.model.backbone.T == 4
    assert cfg.model.backbone.stem_strides == (1, 1, 2, 2)
    assert cfg.train_cfg.max_epochs == 300 and cfg.train_dataloader.batch_size == 128
    opt = cfg.optim_wrapper.optimizer
    assert opt.type == 'AdamW' and opt.lr == 5e-4 and opt.weight_decay == 6e-2
    warmup, cosine = cfg.param_scheduler
    assert warmup.end == 20 and cosine.eta_min == 1e-5 and cosine.end == 300
    assert cfg.model.train_cfg.augments == [dict(type='Mixup', alpha=0.5)]
    assert cfg.model.head.loss.label_smooth_val == 0.1
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        assert loader.dataset.type == name.upper() and loader.dataset.download is False
        assert loader.dataset.data_root == f'data/{name}'
    assert cfg.data_preprocessor.num_classes == cfg.model.head.num_classes == CONFIGS[name]
    augment = cfg.train_dataloader.dataset.pipeline[1]
    assert augment.magnitude_level == 9 and augment.magnitude_std == 0.4
    assert augment.hparams.pad_val == [round(x) for x in cfg.data_preprocessor.mean]


def test_missing_cifar_data_is_an_error(tmp_path):
    cfg = load('cifar10')
    dataset = copy.deepcopy(cfg.val_dataloader.dataset)
    dataset.data_root = str(tmp_path / 'cifar10')
    with pytest.raises(Exception, match='download'):  # never downloaded (download=False)
        DATASETS.build(dataset).full_init()
    assert not any(tmp_path.iterdir())


def real_batch(cfg, pipeline_cfg, num_classes, n):
    pipeline = Compose(pipeline_cfg)
    samples = []
    for i, path in enumerate(PHOTOS[:n]):
        img = mmcv.imresize(mmcv.imread(str(path), channel_order='rgb'), (32, 32),
                            interpolation='bicubic')
        samples.append(pipeline(dict(img=img, gt_label=i % num_classes)))
    return pseudo_collate(samples)


def build_model(cfg):
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.data_preprocessor = cfg.data_preprocessor
    return MODELS.build(model_cfg)


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_model_and_pipelines_on_real_photos(name):
    """Both configs: parameter count, their train pipeline (RandAugment, erasing) and test
    pipeline on real photos, and an evaluation-mode forward with the right number of classes."""
    torch.manual_seed(0)
    cfg = load(name)
    model = build_model(cfg)
    assert sum(p.numel() for p in model.parameters()) == PARAMS[CONFIGS[name]]
    train = real_batch(cfg, cfg.train_dataloader.dataset.pipeline, CONFIGS[name], 2)
    assert [x.shape for x in train['inputs']] == [(3, 32, 32)] * 2
    model.eval()
    out = model.val_step(real_batch(cfg, cfg.val_dataloader.dataset.pipeline, CONFIGS[name], 1))
    assert out[0].pred_score.shape == (CONFIGS[name], )


def test_one_training_iteration_on_real_photos():
    """One iteration of the CIFAR-10 config (mixup, label smoothing, its AdamW) on two photos."""
    torch.manual_seed(0)
    cfg = load('cifar10')
    model = build_model(cfg)
    data = real_batch(cfg, cfg.train_dataloader.dataset.pipeline, 10, 2)
    optim_wrapper = build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper))
    before = [p.detach().clone() for p in model.parameters()]
    model.train()
    log = model.train_step(data, optim_wrapper)
    assert torch.isfinite(log['loss'])
    changed = sum(not torch.equal(a, p.detach()) for a, p in zip(before, model.parameters()))
    assert changed > len(before) // 2


@pytest.mark.slow
@pytest.mark.subprocess
def test_sample_config_trains_and_tests_through_the_tools(tmp_path):
    """The CIFAR-10 recipe (Mixup, RandAugment, RandomErasing, T=4) on real photos shrunk to 32x32:
    one iteration with validation through tools/train.py, then tools/test.py on its checkpoint."""
    import json
    import os
    import subprocess
    import sys
    root = Path(__file__).resolve().parents[2]
    config = 'configs/mmpretrain/spikformer-v2-4-384_t4_cifar10_sample.py'
    env = dict(os.environ, OMP_NUM_THREADS='1')
    train = subprocess.run([sys.executable, 'tools/train.py', config, '--work-dir', str(tmp_path)],
                           cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert train.returncode == 0, train.stdout[-2000:] + train.stderr[-3000:]
    assert 'accuracy/top1' in train.stdout + train.stderr
    out = tmp_path / 'metrics.json'
    test = subprocess.run([sys.executable, 'tools/test.py', config, str(tmp_path / 'iter_1.pth'),
                           '--work-dir', str(tmp_path), '--out', str(out)],
                          cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert test.returncode == 0, test.stdout[-2000:] + test.stderr[-3000:]
    metrics = json.loads(out.read_text())
    assert 0.0 <= metrics['accuracy/top1'] <= 100.0, metrics
