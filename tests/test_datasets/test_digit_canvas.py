"""The digit canvases (mmspike.datasets.digit_canvas): held-out split, exact boxes / masks /
label maps, deterministic build, COCO and mmseg loading, checked against pycocotools."""
import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from mmspike.classification.datasets import DigitsDataset
from mmspike.datasets.digit_canvas import (SEG_IGNORE, build_digit_canvas, compose_canvases,
                                           digits_split, mask_to_rle)


@pytest.fixture(scope='module')
def canvas_root(tmp_path_factory):
    return build_digit_canvas(str(tmp_path_factory.mktemp('canvas') / 'digit_canvas'))


def test_split_is_the_classifier_split_and_disjoint():
    _, _, train_idx = digits_split('train')
    images, labels, test_idx = digits_split('test')
    assert len(train_idx) == 1347 and len(test_idx) == 450
    assert not set(train_idx) & set(test_idx)
    ds = DigitsDataset(split='test')  # the classifier's held-out digits, in the same order
    assert len(ds) == 450
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        assert info['gt_label'] == labels[i]
        assert (info['img'][..., 0] == np.round(images[i] * (255.0 / 16.0))).all()


def test_compose_canvases_uses_every_digit_once_with_exact_annotations():
    images, labels, _ = digits_split('test')
    canvases = compose_canvases(images, labels, seed=1)
    sources = [inst['source'] for c in canvases for inst in c['instances']]
    assert sorted(sources) == list(range(len(images)))
    for c in canvases:
        assert c['img'].shape == (64, 64) and c['img'].dtype == np.uint8
        assert 1 <= len(c['instances']) <= 3
        union = np.zeros((64, 64), bool)
        for inst in c['instances']:
            m = inst['mask']
            assert not (union & m).any(), 'digits overlap'
            union |= m
            x0, y0, x1, y1 = inst['bbox']
            ys, xs = np.nonzero(m)
            assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x0, y0, x1, y1)
            assert (c['seg'][m] == inst['label'] + 1).all()
            # the mask is where the canvas is bright: intensity >= 4/16 of the source digit
            assert (c['img'][m] >= round(4 * 255 / 16)).all()
            digit = images[inst['source']]
            assert m.sum() % (digit >= 4).sum() == 0  # an integer upscaling of the digit's pixels
        assert (c['seg'][~union] != np.arange(1, 11)[:, None]).all()  # no label off the masks
        faint = (c['img'] > 0) & ~union
        assert (c['seg'][faint] == SEG_IGNORE).all()
    again = compose_canvases(images, labels, seed=1)
    assert all((a['img'] == b['img']).all() and (a['seg'] == b['seg']).all()
               for a, b in zip(canvases, again))


def test_rle_matches_pycocotools():
    rng = np.random.RandomState(0)
    for _ in range(5):
        m = rng.rand(13, 17) > 0.6
        m[0, 0] = bool(rng.randint(2))
        rle = mask_utils.frPyObjects(mask_to_rle(m), 13, 17)
        assert (mask_utils.decode(rle).astype(bool) == m).all()


def test_build_is_deterministic_and_coco_gt_scores_one(canvas_root, tmp_path):
    with open(f'{canvas_root}/annotations/instances_test.json') as f:
        first = json.load(f)
    other = build_digit_canvas(str(tmp_path / 'again'))
    with open(f'{other}/annotations/instances_test.json') as f:
        assert json.load(f) == first
    # the ground truth scored as predictions by pycocotools: every box and mask decodes
    coco = COCO(f'{canvas_root}/annotations/instances_test.json')
    assert len(coco.getImgIds()) > 150 and len(coco.getAnnIds()) == 450
    for iou_type in ('bbox', 'segm'):
        dets = [dict(image_id=a['image_id'], category_id=a['category_id'], score=1.0,
                     bbox=a['bbox'],
                     segmentation=mask_utils.frPyObjects(a['segmentation'], 64, 64))
                for a in coco.loadAnns(coco.getAnnIds())]
        for d in dets:
            d['segmentation']['counts'] = d['segmentation']['counts'].decode()
        ev = COCOeval(coco, coco.loadRes(dets), iou_type)
        ev.evaluate(), ev.accumulate(), ev.summarize()
        assert ev.stats[0] == pytest.approx(1.0)


def test_other_parameters_are_refused_not_rebuilt(canvas_root):
    with pytest.raises(ValueError, match='was built with'):
        build_digit_canvas(canvas_root, canvas_size=96)
    with pytest.raises(TypeError, match='unknown digit-canvas parameter'):
        build_digit_canvas(canvas_root, size=96)


def test_coco_and_seg_datasets_load(canvas_root):
    from mmengine.registry import init_default_scope
    from mmspike.registry import DATASETS
    init_default_scope('mmdet')
    det = DATASETS.build(dict(
        type='mmspike.DigitCanvasCocoDataset', data_root=canvas_root + '/', split='test',
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
                  dict(type='PackDetInputs')]))
    sample = det[0]
    inst = sample['data_samples'].gt_instances
    coco = COCO(f'{canvas_root}/annotations/instances_test.json')
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[0]))
    assert len(inst) == len(anns)
    for box, mask, ann in zip(inst.bboxes.tensor, inst.masks.masks, anns):
        x, y, w, h = ann['bbox']
        assert box.tolist() == [x, y, x + w, y + h]
        assert (mask.astype(bool) == coco.annToMask(ann).astype(bool)).all()
    init_default_scope('mmseg')
    seg = DATASETS.build(dict(
        type='mmspike.DigitCanvasSegDataset', data_root=canvas_root + '/', split='test',
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadAnnotations', reduce_zero_label=False),
                  dict(type='PackSegInputs')]))
    assert len(seg) == len(det)
    gt = seg[0]['data_samples'].gt_sem_seg.data[0].numpy()
    for ann in anns:
        assert (gt[coco.annToMask(ann).astype(bool)] == ann['category_id']).all()
    assert set(np.unique(gt)) <= set(range(11)) | {SEG_IGNORE}
