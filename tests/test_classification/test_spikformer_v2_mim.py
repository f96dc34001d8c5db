"""Spikformer V2 masked image modelling: SSC stem (no leakage), visible-token encoder, loss,
exact-key extraction, the ImageNet configs and pretrain -> extract -> fine-tune on real photos."""
import copy
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

import mmspike.classification  # noqa: F401
from mmspike.classification.selfsup import (load_state_dict_exact, mae_to_backbone_state_dict,
                                            patch_mask_to_pixels, random_patch_mask)
from mmspike.classification.selfsup.spikformer_v2_mim import (SpikformerV2MIM,
                                                              convert_scs_to_ssc)
from mmspike.engine import load_state_dict_file
from mmspike.models.backbones import SpikformerV2
from mmspike.models.layers.ssc import SparseBatchNorm2d, SparseConv2d, spconv_available
from mmspike.registry import MODELS

ROOT = Path(__file__).resolve().parents[2]
CFG = 'configs/mmpretrain/spikformer-v2-16-768_mim-'
PRETRAIN, FINETUNE = CFG + 'pretrain_t1_8xb256_in1k.py', CFG + 'finetune_t1_8xb128_in1k.py'
PRETRAIN_SAMPLE, FINETUNE_SAMPLE = CFG + 'pretrain_sample.py', CFG + 'finetune_sample.py'
ARCH = dict(embed_dims=64, depth=2)  # the sample configs' encoder


@pytest.fixture(scope='module', autouse=True)
def mmpretrain_scope():
    init_default_scope('mmpretrain')


def sample_model(seed=0):
    torch.manual_seed(seed)
    model = MODELS.build(copy.deepcopy(Config.fromfile(str(ROOT / PRETRAIN_SAMPLE)).model))
    model.init_weights()
    return model


def masking(ratio=0.75, seed=0, size=64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 3, size, size, generator=g)
    grid = (size // 16, size // 16)
    mask, keep, restore = random_patch_mask(2, grid, ratio, generator=g)
    return x, mask, keep, restore, patch_mask_to_pixels(mask, grid, 16)


def test_conversion_keeps_keys_and_converts_the_whole_stem():
    torch.manual_seed(0)
    plain = SpikformerV2(arch=ARCH, T=1)
    converted = copy.deepcopy(plain)
    convert_scs_to_ssc(converted)
    sd_plain, sd_conv = plain.state_dict(), converted.state_dict()
    assert list(sd_plain) == list(sd_conv)
    assert all(torch.equal(sd_plain[k], sd_conv[k]) for k in sd_plain)
    for stage in converted.stages[:4]:
        assert not any(type(m) is torch.nn.Conv2d for m in stage.modules())
        for name, m in stage.named_modules():
            if type(m) is torch.nn.BatchNorm2d:  # only as the statistics of a sparse BN
                parent = stage.get_submodule(name.rpartition('.')[0])
                assert isinstance(parent, SparseBatchNorm2d), name
    assert isinstance(converted.stages[0][0].conv, SparseConv2d)  # the 2x2/2 patchify conv
    assert converted.stages[0][0].conv.kernel_size == (2, 2)
    assert any(isinstance(m, SparseBatchNorm2d) for m in converted.stages[3].modules())
    assert not any(isinstance(m, (SparseConv2d, SparseBatchNorm2d))
                   for m in converted.stages[4].modules())  # the encoder stays dense
    with pytest.raises(TypeError, match='SpikformerV2'):
        convert_scs_to_ssc(torch.nn.Conv2d(3, 3, 1))


def test_masked_content_never_reaches_the_visible_tokens():
    """Replacing the pixels of masked patches by anything changes neither the stem's visible
    tokens nor the encoder output: SSC keeps them out of the stem and the encoder never sees masked
    tokens. With the same weights, an ordinary stem fed the masked image writes into masked
    positions (kernel edges, BN biases), which is what SSC prevents."""
    model = sample_model()
    x, mask, keep, _, active = masking()
    other = torch.where(active[:, None], x, 10 * torch.randn_like(x))
    model.train()  # BN in batch-statistics mode: statistics must come from visible sites only
    stem = model.stem(x, active)
    act = active[:, ::16, ::16][None, :, None].expand_as(stem)
    assert (stem[~act] == 0).all() and (stem[act] != 0).float().mean() > 0.3
    torch.testing.assert_close(model.stem(other, active), stem, rtol=0, atol=0)
    torch.testing.assert_close(model.encode_visible(other, mask, keep), model.encode_visible(x, mask, keep),
                               rtol=0, atol=0)

    torch.manual_seed(0)
    plain = SpikformerV2(arch=ARCH, T=1, out_indices=(3, ))
    plain.load_state_dict(mae_to_backbone_state_dict(model.state_dict()))
    plain.train()
    (leaky, ) = plain(x * active[:, None])
    assert (leaky[~act] != 0).float().mean() > 0.5


def test_encoder_runs_on_the_visible_tokens_only():
    """``encode`` equals the encoder blocks applied to a map of the K visible tokens (in
    ``ids_keep`` order), and its cost does not include masked tokens."""
    model = sample_model()
    model.eval()
    x, mask, keep, _, active = masking(0.75)
    out = model.encode_visible(x, mask, keep)
    assert out.shape == (2, 4, 64)  # 16 patches, 75% masked: 4 visible tokens of width 64
    stem = model.stem(x, active).flatten(3)  # [T, B, C, L]
    visible = torch.stack([stem[:, b, :, keep[b]] for b in range(2)], 1).unsqueeze(3)
    expected = model.backbone.stages[4](visible).mean(0).squeeze(2).transpose(1, 2)
    torch.testing.assert_close(out, expected)
    # the unmasked path (fine-tuning / feature extraction) sees all 16 tokens
    assert model.extract_feat(x)[-1].shape == (1, 2, 64, 4, 4)


@pytest.mark.skipif(not spconv_available(), reason='spconv is not installed')
def test_patchify_ssc_backends_agree():
    """The 2x2/2 SCS conv as Spike Sparse Convolution: dense reference vs spconv (float64)."""
    torch.manual_seed(1)
    dense = SpikformerV2(arch=ARCH, T=1, out_indices=(0, 1, 2, 3)).double()
    sparse = copy.deepcopy(dense)
    sites_d, sites_s = convert_scs_to_ssc(dense), convert_scs_to_ssc(sparse, backend='spconv')
    x, _, _, _, active = masking(0.5, seed=2)
    with sites_d.use(active):
        out_d = dense(x.double())
    with sites_s.use(active):
        out_s = sparse(x.double())
    for a, b in zip(out_d, out_s):
        torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-9)


def test_loss_trains_stem_and_encoder_and_checks_its_inputs():
    model = sample_model()
    assert isinstance(model, SpikformerV2MIM) and model.mask_ratio == 0.75
    x = torch.randn(2, 3, 64, 64)
    g = torch.Generator().manual_seed(0)
    mask, keep, restore = random_patch_mask(2, (4, 4), 0.75, generator=g)
    pred = model.reconstruct(x, mask, keep, restore)
    assert pred.shape == (2, 16, 16 * 16 * 3)
    # masked patches only: changing the prediction of visible patches leaves the loss unchanged
    loss = model.head.loss(pred, x, mask)
    torch.testing.assert_close(model.head.loss(pred + (1 - mask)[..., None] * 5.0, x, mask), loss)
    losses = model.loss([x], None)
    losses['loss'].backward()
    assert torch.isfinite(losses['loss'])
    assert model.backbone.stages[0][0].conv.weight.grad.abs().sum() > 0
    assert model.backbone.stages[4][0].attn.q_conv[0].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match='multiple of the patch size'):
        model.loss(torch.randn(2, 3, 40, 40), None)
    cfg = Config.fromfile(str(ROOT / PRETRAIN_SAMPLE)).model
    cfg.backbone.stem_strides = (1, 1, 2, 2)
    with pytest.raises(ValueError, match='stride patch_size=16'):
        MODELS.build(cfg)


def test_layer_depth_for_layer_wise_lr_decay():
    backbone = SpikformerV2(arch=ARCH)
    assert backbone.get_layer_depth('backbone.stages.2.1.mlp.fc1.conv.weight', 'backbone.') \
        == (0, 4)
    assert backbone.get_layer_depth('backbone.stages.4.1.attn.q_conv.0.weight', 'backbone.') \
        == (2, 4)
    assert backbone.get_layer_depth('head.fc.weight', 'backbone.') == (3, 4)


def test_imagenet_configs_pretrain_and_finetune_share_the_172m_encoder():
    """The 172M recipe: the pre-training encoder has the fine-tuning backbone's keys and shapes,
    and the fine-tuning classifier has the paper's 172M parameters (built on the meta device)."""
    from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS
    pre, ft = Config.fromfile(str(ROOT / PRETRAIN)), Config.fromfile(str(ROOT / FINETUNE))
    assert pre.model.backbone.arch == ft.model.backbone.arch == '16-768'
    assert pre.model.backbone.T == ft.model.backbone.T == 1
    assert pre.model.neck.embed_dim == 768 and pre.model.mask_ratio == 0.75
    assert ft.custom_hooks[0].type == 'mmspike.PretrainedBackboneHook'
    assert ft.optim_wrapper.constructor == 'LearningRateDecayOptimWrapperConstructor'
    with torch.device('meta'):
        mim = MODELS.build(pre.model)
        classifier = MMPRETRAIN_MODELS.build(ft.model)
    assert sum(p.numel() for p in classifier.parameters()) == 172_278_760
    extracted = mae_to_backbone_state_dict(mim.state_dict())
    target = classifier.backbone.state_dict()
    assert list(extracted) == list(target)
    assert all(extracted[k].shape == v.shape for k, v in target.items())


def run(args, expect_ok=True):
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    if expect_ok:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc.stdout + proc.stderr


@pytest.mark.slow
@pytest.mark.subprocess
def test_pretrain_extract_finetune_with_exact_keys(tmp_path):
    """tools/train.py pre-trains on the bundled photos, spike_mae2backbone extracts the encoder
    (checked key for key against the fine-tune config), and the fine-tune run loads every encoder
    tensor by key (lr 0: the parameters stay what was loaded) and evaluates."""
    pre_dir, ft_dir = tmp_path / 'pre', tmp_path / 'ft'
    log = run(['tools/train.py', PRETRAIN_SAMPLE, '--work-dir', str(pre_dir)])
    assert 'Iter(train) [3/3]' in log
    ckpt = pre_dir / 'iter_3.pth'
    backbone_file = tmp_path / 'backbone.pth'
    spec = importlib.util.spec_from_file_location(
        'spike_mae2backbone', ROOT / 'tools/model_converters/spike_mae2backbone.py')
    converter = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(converter)
    converter.main([str(ckpt), str(backbone_file), '--config', str(ROOT / FINETUNE_SAMPLE)])
    converted = load_state_dict_file(str(backbone_file))
    pretrained = mae_to_backbone_state_dict(load_state_dict_file(str(ckpt)))
    assert converted.keys() == pretrained.keys()
    load_state_dict_exact(SpikformerV2(arch=ARCH, T=1), converted)

    log = run(['tools/train.py', FINETUNE_SAMPLE, '--work-dir', str(ft_dir), '--cfg-options',
               f'custom_hooks.0.checkpoint={backbone_file}', 'optim_wrapper.optimizer.lr=0'])
    assert f'loaded all {len(converted)} tensors of model.backbone' in log
    assert 'accuracy/top1' in log
    finetuned = load_state_dict_file(str(ft_dir / 'iter_2.pth'))
    for k, _ in SpikformerV2(arch=ARCH).named_parameters():
        assert torch.equal(finetuned['backbone.' + k], converted[k]), k
