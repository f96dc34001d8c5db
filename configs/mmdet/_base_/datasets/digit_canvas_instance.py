# Digit canvases (mmspike.datasets.digit_canvas): 64x64 gray canvases with 1-3 real handwritten
# scikit-learn digits each (16-32 px), COCO boxes and masks, 10 classes. Train canvases hold only
# the 1,347 training digits, test canvases only the 450 held-out digits (664 / 225 canvases).
# The dataset builds data/digit_canvas/ at first use (deterministic, a few seconds).
# No flips: a mirrored digit is not the same digit.
dataset_type = 'mmspike.DigitCanvasCocoDataset'
data_root = 'data/digit_canvas/'
img_scale = (64, 64)

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(type=dataset_type, data_root=data_root, split='train',
                 filter_cfg=dict(filter_empty_gt=True, min_size=1), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=16,
    num_workers=0,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='test', test_mode=True,
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='CocoMetric', ann_file=data_root + 'annotations/instances_test.json',
                     metric=['bbox', 'segm'], format_only=False, backend_args=None)
test_evaluator = val_evaluator
