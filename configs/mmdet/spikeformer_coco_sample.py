# README demo: the flagship spiking Mask R-CNN (spikeformer_coco.py, unchanged model) trains for a
# few iterations on the 4-image COCO val2017 sample bundled in the repo, on a CPU, then
# tools/test.py reports COCO bbox / segm mAP with mmdet's CocoMetric. Small images (at most
# 384x256) and 6 iterations keep it to about a minute; the numbers only show that the pipeline
# works.
#
#   python tools/train.py configs/mmdet/spikeformer_coco_sample.py
#   python tools/test.py configs/mmdet/spikeformer_coco_sample.py \
#       work_dirs/spikeformer_coco_sample/epoch_3.pth
_base_ = './spikeformer_coco.py'

data_root = 'data/coco_person_sample/'
ann_file = 'annotations/instances_sample.json'
img_scale = (384, 256)

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
_dataset = dict(data_root=data_root, ann_file=ann_file, data_prefix=dict(img='images/'))
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(_dataset, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(_dataset, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + ann_file)
test_evaluator = val_evaluator
del _dataset

# 3 epochs of 2 iterations (the recipe's AdamW, lr 2e-4, with a 2-iteration warm-up), evaluated
# at the end
train_cfg = dict(max_epochs=3, val_interval=3)
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=2)]
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=3))
log_processor = dict(window_size=1)
randomness = dict(seed=0)
