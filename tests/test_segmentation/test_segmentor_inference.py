"""Spiking segmentors in mmseg's EncoderDecoder on real ADE20K images: sliding-window inference
equals stitching windows run independently in any order, repeated predictions are identical (no
neuron state leaks between windows or images), whole-image inference on odd sizes, the same
segmentation in spike-driven (binary) mode, and a list of necks (mmspike.TimeReduce then mmseg's
FPN) built as a Sequential."""
import copy
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import ConfigDict
from mmengine.dataset import pseudo_collate
from mmengine.model import Sequential
from mmengine.optim import OptimWrapper
from mmengine.registry import init_default_scope
from mmseg.datasets import ADE20KDataset
from mmseg.registry import MODELS
from torch import nn

from mmspike.models import spike_driven
from mmspike.models.neurons import IntegerNeuron

DATA_ROOT = Path(__file__).resolve().parents[2] / 'data' / 'ade20k_sample'
TINY_ARCH = dict(channels=(16, 32, 64, 64), depths=(1, 1, 1, 1), strides=(4, 2, 2, 1))
NEURONS = {
    # the flagship setting (1x4) and a leaky neuron over two time steps, whose membrane potential
    # a stateful implementation could carry from one window into the next
    'multispike_t1': (1, dict(type='MultiSpike', max_spikes=4)),
    'ilif_t2': (2, dict(type='ILIF', max_spikes=4, norm=4.0, leak=0.25)),
}


@pytest.fixture(autouse=True)
def mmseg_scope():
    init_default_scope('mmseg')


def _segmentor(T, neuron, test_cfg):
    cfg = dict(
        type='EncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
                               std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_val=0,
                               seg_pad_val=255, size=(64, 64)),
        backbone=dict(type='mmspike.ESpikeFormer', arch=TINY_ARCH, T=T, neuron=neuron,
                      out_indices=(0, 1, 2, 3)),
        neck=dict(type='mmspike.SpikeFPN', in_channels=[16, 32, 64, 64], out_channels=16,
                  num_outs=4, neuron=neuron, norm_cfg=dict(type='BN'), time_reduction=None),
        decode_head=dict(type='mmspike.SpikeFPNHead', in_channels=[16] * 4, in_index=[0, 1, 2, 3],
                         feature_strides=[4, 8, 16, 16], channels=16, neuron=neuron,
                         num_classes=150, norm_cfg=dict(type='BN')),
        test_cfg=ConfigDict(test_cfg))  # mmseg reads test_cfg.mode etc. as attributes
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    # BN statistics of real images (momentum 1: the last batch's), so that neurons fire in eval mode
    model.train()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = 1.0
    np.random.seed(0)
    batch = model.data_preprocessor(_batch(_dataset(short_side=64, train=True), [0, 1, 2]), True)
    with torch.no_grad():
        model._forward(batch['inputs'], batch['data_samples'])
    return model.eval()


def _dataset(short_side, train=False):
    pipeline = [dict(type='LoadImageFromFile'),
                dict(type='Resize', scale=(512, short_side), keep_ratio=True),
                dict(type='LoadAnnotations', reduce_zero_label=True),
                dict(type='PackSegInputs')]
    if train:
        pipeline.insert(-1, dict(type='RandomCrop', crop_size=(64, 64)))
    return ADE20KDataset(data_root=str(DATA_ROOT),
                         data_prefix=dict(img_path='images/validation',
                                          seg_map_path='annotations/validation'),
                         pipeline=pipeline)


def _batch(dataset, indices):
    return pseudo_collate([dataset[i] for i in indices])


def _windows(h, w, crop, stride):
    """The window corners of mmseg's slide_inference."""
    (hc, wc), (hs, ws) = crop, stride
    out = []
    for i in range(max(h - hc + hs - 1, 0) // hs + 1):
        for j in range(max(w - wc + ws - 1, 0) // ws + 1):
            y2, x2 = min(i * hs + hc, h), min(j * ws + wc, w)
            out.append((max(y2 - hc, 0), y2, max(x2 - wc, 0), x2))
    return out


@pytest.mark.parametrize('setting', sorted(NEURONS))
def test_slide_inference_has_no_state_between_windows(setting):
    T, neuron = NEURONS[setting]
    crop, stride = (64, 64), (48, 48)
    model = _segmentor(T, neuron, dict(mode='slide', crop_size=crop, stride=stride))
    dataset = _dataset(short_side=128)
    data_a, data_b = _batch(dataset, [0]), _batch(dataset, [2])

    batch = model.data_preprocessor(copy.deepcopy(data_a), False)
    inputs = batch['inputs']
    metas = [dict(s.metainfo) for s in batch['data_samples']]
    assert inputs.shape[-2:] == (128, 171)
    with torch.no_grad():
        slide = model.slide_inference(inputs, metas)
        # the same windows, each run on its own, visited in reverse order, stitched by hand
        windows = _windows(128, 171, crop, stride)
        assert len(windows) == 12
        preds = torch.zeros_like(slide)
        count = torch.zeros(1, 1, 128, 171)
        for y1, y2, x1, x2 in reversed(windows):
            logits = model.encode_decode(inputs[:, :, y1:y2, x1:x2],
                                         [dict(img_shape=(y2 - y1, x2 - x1))])
            preds += F.pad(logits, (x1, 171 - x2, y1, 128 - y2))
            count[..., y1:y2, x1:x2] += 1
        # the logits vary over the image: the neurons before the classifier fire
        assert logits.std(dim=(2, 3)).min() > 1e-3
    assert torch.allclose(slide, preds / count, atol=1e-5)

    # whole pipeline (preprocess, slide, resize to the original size), twice, with another image
    # predicted in between: identical results
    with torch.no_grad():
        first = model.test_step(copy.deepcopy(data_a))[0]
        model.test_step(copy.deepcopy(data_b))
        again = model.test_step(copy.deepcopy(data_a))[0]
    assert first.seg_logits.data.shape == (150, 512, 683)  # ori_shape of ADE_val_00000001
    assert torch.equal(first.seg_logits.data, again.seg_logits.data)
    assert torch.equal(first.pred_sem_seg.data, again.pred_sem_seg.data)


def test_whole_inference_on_odd_sizes():
    model = _segmentor(1, NEURONS['multispike_t1'][1], dict(mode='whole'))
    dataset = _dataset(short_side=97)
    with torch.no_grad():
        for i, ori in enumerate([(512, 683), (364, 500), (300, 400)]):
            batch = model.data_preprocessor(_batch(dataset, [i]), False)
            assert batch['inputs'].shape[-2] == 97  # not a multiple of the stride 16
            out = model.test_step(_batch(dataset, [i]))[0]
            assert out.seg_logits.data.shape == (150, *ori)
            assert out.pred_sem_seg.data.shape == (1, *ori)
            assert 0 <= int(out.pred_sem_seg.data.min()) <= int(out.pred_sem_seg.data.max()) < 150


def test_list_of_necks_is_a_sequential():
    # mmspike.TimeReduce ends the time axis, then mmseg's stock FPN and FPNHead follow
    cfg = dict(
        type='EncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
                               std=[58.395, 57.12, 57.375], bgr_to_rgb=True, size=(64, 64)),
        backbone=dict(type='mmspike.ESpikeFormer', arch=TINY_ARCH, out_indices=(0, 1, 2, 3)),
        neck=[dict(type='mmspike.TimeReduce'),
              dict(type='FPN', in_channels=[16, 32, 64, 64], out_channels=16, num_outs=4)],
        decode_head=dict(type='FPNHead', in_channels=[16] * 4, in_index=[0, 1, 2, 3],
                         feature_strides=[4, 8, 16, 16], channels=16, num_classes=150,
                         norm_cfg=dict(type='BN')))
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    assert isinstance(model.neck, Sequential)
    assert [type(m).__name__ for m in model.neck] == ['TimeReduce', 'FPN']
    data = _batch(_dataset(short_side=64, train=True), [0, 1])
    batch = model.data_preprocessor(copy.deepcopy(data), True)
    feats = model.extract_feat(batch['inputs'])
    assert [tuple(f.shape) for f in feats] == [(2, 16, 16, 16), (2, 16, 8, 8), (2, 16, 4, 4),
                                               (2, 16, 4, 4)]
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01))
    stem = model.backbone.stages[0][0].conv.weight
    before = stem.detach().clone()
    log = model.train_step(data, optim)
    assert torch.isfinite(log['decode.loss_ce'])
    assert not torch.equal(stem.detach(), before)  # gradients reached the spiking backbone


def test_spike_driven_mode_segments_the_same():
    # every integer neuron of backbone, neck and head emitting its count as D binary spikes
    model = _segmentor(1, NEURONS['multispike_t1'][1], dict(mode='whole'))
    batch = model.data_preprocessor(_batch(_dataset(short_side=64), [1]), False)
    metas = [s.metainfo for s in batch['data_samples']]
    with torch.no_grad():
        reference = model.encode_decode(batch['inputs'], metas)
        with spike_driven(model) as m:
            binary = m.encode_decode(batch['inputs'], metas)
            switched = [n for n in model.modules() if isinstance(n, IntegerNeuron)]
            assert switched and all(n.spike_driven for n in switched)
            assert sum(n.binary_spike_count for n in switched) > 0
    assert torch.allclose(reference, binary, atol=1e-5)
    assert reference.std(dim=(2, 3)).min() > 1e-3
