"""Fast learning checks: the held-out learning-check models (benchmarks/learning_check.py) must
fit a few fixed training batches. Each test builds the model and the training data of its
config, takes ``model.train_step`` with the config's optimizer on the same small batch
a few times, and asserts the loss falls to at most ``1 / factor`` of its highest value in the
first 8 steps.

A spiking layer whose surrogate gradient is zero, a head fed the wrong strides or an assigner
that never matches stops the loss from falling; the full held-out checks (minutes per model) are
in ``benchmarks/learning_check.py``.

A falling loss alone does not prove a segmenter learns: learning the background prior (about 88 %
of the canvas pixels) divides the cross-entropy by 3 while every pixel is still predicted as
background, the collapse the Semantic FPN once showed. Its test also asks for digit pixels to be
found on the batch (digit-vs-background IoU).
"""
import copy
import time
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

import mmspike.classification  # noqa: F401
import mmspike.detection  # noqa: F401
import mmspike.segmentation  # noqa: F401
import mmspike.models  # noqa: F401
from mmspike.registry import DATASETS, MODELS

REPO = Path(__file__).resolve().parents[2]

# config, default scope, batch size, steps, factor the loss must fall by
CASES = {
    'mask-rcnn': ('configs/mmdet/spikeformer_digits.py', 'mmdet', 4, 25, 2.0),
    'spikeyolo-n': ('configs/mmdet/spikeyolo-n_digits.py', 'mmdet', 4, 25, 2.0),
    'semantic-fpn': ('configs/mmseg/fpn_e-spikeformer_digits.py', 'mmseg', 4, 25, 3.0),
    'hardvs-events': ('configs/hardvs/e-spikeformer-2m_digits-events.py', 'mmpretrain', 8, 25,
                      2.0),
}


# digit-vs-background IoU the Semantic FPN must reach on its fixed batch (0 when it collapses to
# background)
FG_IOU = 0.3


@pytest.fixture(scope='module')
def data_roots(tmp_path_factory):
    root = tmp_path_factory.mktemp('learning')
    return dict(canvas=str(root / 'digit_canvas') + '/', events=str(root / 'digit_events'))


def _loss_curve(name, data_roots):
    config, scope, batch, steps, factor = CASES[name]
    cfg = Config.fromfile(str(REPO / config))
    init_default_scope(scope)
    torch.manual_seed(0)
    ds_cfg = copy.deepcopy(cfg.train_dataloader.dataset)
    if name == 'hardvs-events':
        ds_cfg.update(data_root=data_roots['events'], build_cfg=dict(max_per_split=batch))
    else:
        ds_cfg.update(data_root=data_roots['canvas'])
    dataset = DATASETS.build(ds_cfg)
    data = pseudo_collate([dataset[i] for i in range(batch)])
    model_cfg = copy.deepcopy(cfg.model)
    if cfg.get('data_preprocessor') is not None:  # as the Runner does (mmpretrain configs)
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    model = MODELS.build(model_cfg)
    model.init_weights()
    model.train()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    losses = []
    for _ in range(steps):
        log_vars = model.train_step(data, optim_wrapper)
        losses.append(float(log_vars['loss']))
    return losses, factor, model, data


def _foreground_iou(model, data):
    """IoU of 'some digit' against background between the segmenter's prediction on ``data``
    and its labels (ignored pixels left out). Batch statistics in the norms (train mode, no
    dropout): after a few steps the running statistics still lag the weights."""
    model.train()
    for m in model.modules():
        if isinstance(m, torch.nn.modules.dropout._DropoutNd):
            m.eval()
    with torch.no_grad():
        batch = model.data_preprocessor(data, True)
        logits = model.encode_decode(batch['inputs'],
                                     [s.metainfo for s in batch['data_samples']])
    pred = logits.argmax(1) > 0
    labels = torch.stack([s.gt_sem_seg.data[0] for s in batch['data_samples']]).to(pred.device)
    valid, digit = labels != 255, (labels > 0) & (labels != 255)
    union = ((pred | digit) & valid).sum().item()
    return ((pred & digit) & valid).sum().item() / union, (pred & valid).float().mean().item()


@pytest.mark.parametrize('name', sorted(CASES))
def test_loss_falls_on_a_fixed_batch(name, data_roots):
    t0 = time.time()
    losses, factor, model, data = _loss_curve(name, data_roots)
    assert all(torch.isfinite(torch.tensor(losses))), losses
    # Reference: the highest of the first 8 losses. A prediction-aware assigner (SpikeYOLO's
    # task-aligned one) makes the very first losses small, before predictions align.
    first, last = max(losses[:8]), min(losses[-3:])
    assert last <= first / factor, (
        f'{name}: loss {first:.3f} -> {last:.3f} in {len(losses)} steps, expected a fall by '
        f'{factor}x ({time.time() - t0:.0f} s): {[round(v, 3) for v in losses]}')
    if name == 'semantic-fpn':
        iou, fg_frac = _foreground_iou(model, data)
        assert iou >= FG_IOU, (
            f'{name}: digit-vs-background IoU {iou:.3f} on the fitted batch (predicted digit '
            f'fraction {fg_frac:.3f}), expected >= {FG_IOU}: the loss fell ({first:.3f} -> '
            f'{last:.3f}) by learning the background prior only')
