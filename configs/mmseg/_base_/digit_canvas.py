# Digit canvases for mmseg (mmspike.datasets.digit_canvas): the 64x64 canvases of the detection
# set, labelled per pixel: 0 background, 1..10 the digits '0'..'9', 255 (ignored) on the faint
# fringe of each digit. Train canvases hold only training digits, test canvases only the 450
# held-out digits. The dataset builds data/digit_canvas/ at first use. No flips (a mirrored digit
# is not the same digit). mmseg's runtime and IoUMetric.
_base_ = ['mmseg::_base_/default_runtime.py']
custom_imports = dict(imports=['mmspike.segmentation'], allow_failed_imports=False)
default_scope = 'mmseg'

dataset_type = 'mmspike.DigitCanvasSegDataset'
data_root = 'data/digit_canvas/'
crop_size = (64, 64)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=16,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, split='train', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=16,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='test', pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
