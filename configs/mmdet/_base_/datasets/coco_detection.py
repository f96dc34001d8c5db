# COCO 2017 detection (80 classes, boxes only) from mmdet, with E-SpikeFormer's multi-scale crop
# augmentation. Data: COCO in mmdet's layout under `data_root` (data/coco/: annotations/,
# train2017/, val2017/; a symlink is fine). Nothing stands in for missing data: without data/coco/
# building the datasets fails naming the annotation file it looked for. The 4-image COCO sample
# bundled in the repo is used only by the `*_sample.py` configs.
_base_ = 'mmdet::_base_/datasets/coco_detection.py'
data_root = 'data/coco/'
_train = dict(ann_file='annotations/instances_train2017.json', img='train2017/')
_val = dict(ann_file='annotations/instances_val2017.json', img='val2017/')

# DETR-style multi-scale crop (mmdet's "ms-crop" recipe, as the upstream E-SpikeFormer detectors)
_scales = [(480, 1333), (512, 1333), (544, 1333), (576, 1333), (608, 1333), (640, 1333),
           (672, 1333), (704, 1333), (736, 1333), (768, 1333), (800, 1333)]
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomChoice',
         transforms=[
             [dict(type='RandomChoiceResize', scales=_scales, keep_ratio=True)],
             [dict(type='RandomChoiceResize', scales=[(400, 1333), (500, 1333), (600, 1333)],
                   keep_ratio=True),
              dict(type='RandomCrop', crop_type='absolute_range', crop_size=(384, 600),
                   allow_negative_crop=True),
              dict(type='RandomChoiceResize', scales=_scales, keep_ratio=True)],
         ]),
    dict(type='PackDetInputs'),
]

train_dataloader = dict(
    dataset=dict(data_root=data_root, ann_file=_train['ann_file'],
                 data_prefix=dict(img=_train['img']), pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(data_root=data_root, ann_file=_val['ann_file'],
                 data_prefix=dict(img=_val['img'])))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + _val['ann_file'])
test_evaluator = val_evaluator
del _train, _val, _scales
