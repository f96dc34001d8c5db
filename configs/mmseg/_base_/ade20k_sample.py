# The CPU demo counterpart of ade20k_4xb4-160k.py (same optimizer): the 3-image ADE20K validation
# sample bundled in the repo (data/ade20k_sample, see its PROVENANCE.md) used as train, val and
# test set, 128x128 crops (short side 128, mmseg's augmentations), 4 iterations. The
# *_ade20k-sample.py configs add a model base and sliding-window testing (128x128 windows,
# stride 96).
_base_ = './ade20k_4xb4-160k.py'

data_root = 'data/ade20k_sample'
crop_size = (128, 128)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=(512, 128), ratio_range=(1.0, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(512, 128), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
_data = dict(
    data_root=data_root,
    data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'))
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(_data, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    dataset=dict(_data, pipeline=test_pipeline))
test_dataloader = val_dataloader
del _data

# 4 iterations of the recipe's optimizer (2-iteration warm-up), validated and saved at the end
train_cfg = dict(max_iters=4, val_interval=4)
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=2)]
default_hooks = dict(
    logger=dict(interval=1), checkpoint=dict(interval=4), visualization=dict(draw=False))
log_processor = dict(window_size=1)
env_cfg = dict(cudnn_benchmark=False)
