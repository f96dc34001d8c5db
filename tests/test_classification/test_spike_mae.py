"""Spike-masked autoencoder: SSC encoder (no leakage), backends, loss, checkpoint -> fine-tune."""
import copy
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

import mmspike.classification  # noqa: F401
from mmspike.engine import load_state_dict_file
from mmspike.models.backbones import ESpikeFormer
from mmspike.models.layers.ssc import SparseBatchNorm2d, SparseConv2d, spconv_available
from mmspike.classification.selfsup import (SpikeMAE, convert_espikeformer_to_ssc, load_state_dict_exact,
                                    mae_to_backbone_state_dict, patch_mask_to_pixels,
                                    random_patch_mask)
from mmspike.registry import MODELS

ROOT = Path(__file__).resolve().parents[2]
PRETRAIN = 'configs/mmpretrain/spike-mae_e-spikeformer-19m_in1k-pretrain.py'
FINETUNE = 'configs/mmpretrain/spike-mae_e-spikeformer-19m_in1k-finetune.py'
PRETRAIN_SAMPLE = 'configs/mmpretrain/spike-mae_e-spikeformer-19m_in1k-pretrain_sample.py'
FINETUNE_SAMPLE = 'configs/mmpretrain/spike-mae_e-spikeformer-19m_in1k-finetune_sample.py'
# The encoder of the sample configs: E-SpikeFormer's design with 16/32/64/64 channels.
ARCH = dict(channels=(16, 32, 64, 64), depths=(1, 1, 1, 1), strides=(4, 2, 2, 1))
CNN_STAGES = (0, 1)


def small_backbone(seed=0):
    torch.manual_seed(seed)
    return ESpikeFormer(arch=ARCH, out_indices=(0, 1, 2, 3))


def masked_input(ratio, seed=0, size=64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 3, size, size, generator=g)
    mask, _, _ = random_patch_mask(2, (size // 16, size // 16), ratio, generator=g)
    return x, mask, patch_mask_to_pixels(mask, (size // 16, size // 16), 16)


def at_stride(active, out):
    s = active.shape[-1] // out.shape[-1]
    return active[:, ::s, ::s]


def test_random_patch_mask():
    mask, keep, restore = random_patch_mask(3, (4, 4), 0.75)
    assert mask.shape == (3, 16) and keep.shape == (3, 4)
    assert (mask.sum(1) == 12).all()
    assert (mask.gather(1, keep) == 0).all()  # the kept ids are the visible patches
    assert torch.equal(restore.argsort(1)[:, :4], keep)
    with pytest.raises(ValueError, match='mask_ratio'):
        random_patch_mask(1, (2, 2), 1.0)


def test_conversion_keeps_weights_and_keys():
    plain = small_backbone()
    converted = copy.deepcopy(plain)
    convert_espikeformer_to_ssc(converted)
    sd_plain, sd_conv = plain.state_dict(), converted.state_dict()
    assert list(sd_plain) == list(sd_conv)
    assert all(torch.equal(sd_plain[k], sd_conv[k]) for k in sd_plain)
    n_conv = sum(isinstance(m, SparseConv2d) for m in converted.modules())
    n_plain = sum(type(m) is torch.nn.Conv2d for s in plain.stages[:2] for m in s.modules())
    assert n_conv == n_plain + 1  # + the downsampling conv in front of the Transformer
    assert any(isinstance(m, SparseBatchNorm2d) for m in converted.stages[2][0].modules())
    assert not any(isinstance(m, SparseConv2d) for m in converted.stages[2][1:].modules())


@pytest.mark.parametrize('backend', ['dense', 'spconv'])
def test_ssc_encoder_keeps_masked_positions_zero(backend):
    if backend == 'spconv' and not spconv_available():
        pytest.skip('spconv is not installed')
    model = small_backbone()
    sites = convert_espikeformer_to_ssc(model, backend=backend)
    x, _, active = masked_input(0.5)
    with sites.use(active):
        outs = model(x)
    for i in CNN_STAGES:
        out = outs[i]  # [T, B, C, H, W]
        act = at_stride(active, out)[None, :, None].expand_as(out)
        assert (out[~act] == 0).all(), f'stage {i} leaks into masked positions'
        assert (out[act] != 0).float().mean() > 0.5  # visible positions carry features
    # masked tokens enter the Transformer as zeros; attention then mixes them (by design)
    assert (outs[2][~at_stride(active, outs[2])[None, :, None].expand_as(outs[2])] != 0).any()


def test_plain_spike_conv_leaks_into_masked_positions():
    """The information leakage SSC prevents: with the same weights, an ordinary E-SpikeFormer fed
    the masked image writes into masked positions at every CNN stage (edges of the kernels and
    BN biases), until most masked sites carry features."""
    model = small_backbone()
    x, _, active = masked_input(0.5)
    outs = model(x * active[:, None])
    for i in CNN_STAGES:
        out = outs[i]
        masked = ~at_stride(active, out)[None, :, None].expand_as(out)
        leaked = (out[masked] != 0).float().mean().item()
        assert leaked > 0.5, f'stage {i}: only {leaked:.0%} of masked values are non-zero'


@pytest.mark.skipif(not spconv_available(), reason='spconv is not installed')
@pytest.mark.parametrize('ratio', [0.25, 0.5, 0.75])
def test_encoder_backends_agree(ratio):
    """The whole converted encoder: dense reference vs spconv, outputs and all gradients
    (float64, so no neuron sits on a rounding edge)."""
    dense = small_backbone(seed=1).double()
    sparse = copy.deepcopy(dense)
    sites_d = convert_espikeformer_to_ssc(dense, backend='dense')
    sites_s = convert_espikeformer_to_ssc(sparse, backend='spconv')
    x, _, active = masked_input(ratio, seed=2)
    xd, xs = x.double().requires_grad_(), x.double().requires_grad_()
    with sites_d.use(active):
        out_d = dense(xd)
    with sites_s.use(active):
        out_s = sparse(xs)
    for a, b in zip(out_d, out_s):
        torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-9)
    sum((o * (k + 1)).sum() for k, o in enumerate(out_d)).backward()
    sum((o * (k + 1)).sum() for k, o in enumerate(out_s)).backward()
    torch.testing.assert_close(xs.grad, xd.grad, rtol=1e-9, atol=1e-9)
    for (name, pd), ps in zip(dense.named_parameters(), sparse.parameters()):
        if pd.grad is None:
            assert ps.grad is None, name
            continue
        torch.testing.assert_close(ps.grad, pd.grad, rtol=1e-8, atol=1e-9, msg=name)


def sample_model_cfg():
    cfg = Config.fromfile(str(ROOT / PRETRAIN_SAMPLE))
    return copy.deepcopy(cfg.model)


def test_spike_mae_loss_is_normalised_mse_on_masked_patches():
    model = MODELS.build(sample_model_cfg())
    assert isinstance(model, SpikeMAE) and model.mask_ratio == 0.5
    model.init_weights()
    x = torch.randn(2, 3, 64, 64)
    g = torch.Generator().manual_seed(0)
    mask, keep, restore = random_patch_mask(2, (4, 4), 0.5, generator=g)
    pred = model.reconstruct(x, mask, keep, restore)
    assert pred.shape == (2, 16, 16 * 16 * 3)
    # by hand: patchify (p, q, c order), normalise each patch, MSE, mean over masked patches
    patches = x.reshape(2, 3, 4, 16, 4, 16).permute(0, 2, 4, 3, 5, 1).reshape(2, 16, -1)
    target = (patches - patches.mean(-1, keepdim=True)) / (patches.var(-1, keepdim=True) + 1e-6)**.5
    per_patch = ((pred - target)**2).mean(-1)
    expected = (per_patch * mask).sum() / mask.sum()
    torch.testing.assert_close(model.head.loss(pred, x, mask), expected)
    # visible patches do not count: changing their prediction leaves the loss unchanged
    pred2 = pred + (1 - mask)[..., None] * 5.0
    torch.testing.assert_close(model.head.loss(pred2, x, mask), expected)

    losses = model.loss(x, None)
    losses['loss'].backward()
    assert torch.isfinite(losses['loss'])
    assert model.backbone.stages[0][0].conv.weight.grad.abs().sum() > 0
    assert model.extract_feat(x)[-1].shape == (1, 2, 64, 4, 4)
    with pytest.raises(ValueError, match='multiple of the patch size'):
        model.loss(torch.randn(2, 3, 40, 40), None)


def test_spike_mae_needs_a_stride16_encoder():
    cfg = sample_model_cfg()
    cfg.backbone.out_indices = (1, )
    with pytest.raises(ValueError, match='stride patch_size=16'):
        MODELS.build(cfg)


def test_exact_loading_lists_missing_and_unexpected_keys():
    model = MODELS.build(sample_model_cfg())
    backbone_sd = mae_to_backbone_state_dict(model.state_dict())
    target = ESpikeFormer(arch=ARCH)
    load_state_dict_exact(target, backbone_sd)  # every key, nothing left over
    for k, v in target.state_dict().items():
        assert torch.equal(v, backbone_sd[k])
    broken = dict(backbone_sd)
    del broken['stages.0.0.conv.weight']
    broken['stages.9.conv.weight'] = torch.zeros(1)
    with pytest.raises(KeyError, match=r"1 missing \['stages.0.0.conv.weight'\], 1 unexpected "
                                       r"\['stages.9.conv.weight'\]"):
        load_state_dict_exact(target, broken)
    wide = ESpikeFormer(arch=dict(ARCH, channels=(32, 32, 64, 64)))
    with pytest.raises(ValueError, match='stages.0.0.conv.weight: checkpoint'):
        load_state_dict_exact(wide, backbone_sd)
    with pytest.raises(KeyError, match='no key starts with'):
        mae_to_backbone_state_dict(backbone_sd)


def test_imagenet_configs_pretrain_and_finetune_share_the_encoder():
    """The 19M recipe: the pre-training encoder loads into the fine-tuning backbone key for key."""
    pre, ft = Config.fromfile(str(ROOT / PRETRAIN)), Config.fromfile(str(ROOT / FINETUNE))
    assert pre.model.mask_ratio == 0.5 and pre.train_cfg.max_epochs == 200
    opt = pre.optim_wrapper.optimizer
    assert opt.betas == (0.9, 0.95) and opt.weight_decay == 0.05 and opt.lr == 1.5e-4 * 2048 / 256
    assert pre.param_scheduler[0].end == 20
    assert pre.model.neck.embed_dim == 360 and pre.model.neck.decoder_embed_dim == 256
    assert pre.model.neck.decoder_depth == 4
    assert ft.custom_hooks[0].type == 'mmspike.PretrainedBackboneHook'
    mae = MODELS.build(pre.model)
    backbone = MODELS.build(ft.model.backbone)
    load_state_dict_exact(backbone, mae_to_backbone_state_dict(mae.state_dict()))


def run(args, expect_ok=True):
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    if expect_ok:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    else:
        assert proc.returncode != 0
    return proc.stdout + proc.stderr


@pytest.mark.subprocess
def test_pretrain_then_finetune_with_exact_keys(tmp_path):
    """tools/train.py pre-trains on the bundled photos, the converter extracts the encoder, and the
    fine-tune run loads every encoder tensor by key (lr 0: the weights stay what was loaded)."""
    pre_dir, ft_dir = tmp_path / 'pre', tmp_path / 'ft'
    log = run(['tools/train.py', PRETRAIN_SAMPLE, '--work-dir', str(pre_dir)])
    assert 'Iter(train) [3/3]' in log
    ckpt = pre_dir / 'iter_3.pth'
    backbone_file = tmp_path / 'backbone.pth'

    spec = importlib.util.spec_from_file_location(
        'spike_mae2backbone', ROOT / 'tools/model_converters/spike_mae2backbone.py')
    converter = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(converter)
    convert = converter.main
    convert([str(ckpt), str(backbone_file), '--config', str(ROOT / FINETUNE_SAMPLE)])
    converted = load_state_dict_file(str(backbone_file))
    pretrained = mae_to_backbone_state_dict(load_state_dict_file(str(ckpt)))
    assert converted.keys() == pretrained.keys()

    log = run(['tools/train.py', FINETUNE_SAMPLE, '--work-dir', str(ft_dir), '--cfg-options',
               f'custom_hooks.0.checkpoint={backbone_file}', 'optim_wrapper.optimizer.lr=0'])
    assert f'loaded all {len(converted)} tensors of model.backbone' in log
    assert 'accuracy/top1' in log
    finetuned = load_state_dict_file(str(ft_dir / 'iter_2.pth'))
    params = dict(ESpikeFormer(arch=ARCH).named_parameters())
    for k in params:  # parameters unchanged by lr 0 (BN running statistics do move)
        assert torch.equal(finetuned['backbone.' + k], converted[k]), k

    # the hook and load_from would both set the backbone: refused instead of silently overwritten
    log = run(['tools/train.py', FINETUNE_SAMPLE, '--work-dir', str(tmp_path / 'both'),
               '--cfg-options', f'custom_hooks.0.checkpoint={backbone_file}',
               f'load_from={ft_dir / "iter_2.pth"}'], expect_ok=False)
    assert 'both set the weights of model.backbone' in log, log[-3000:]

    # a checkpoint of another arch (the 19M fine-tune config) is refused, listing the keys
    with pytest.raises(KeyError, match=r"missing \['stages.1.2.mlp.fc1.bn.bias'"):
        convert([str(ckpt), str(tmp_path / 'x.pth'), '--config', str(ROOT / FINETUNE)])
