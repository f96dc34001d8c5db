# What the ImageNet-1k family bases share: mmpretrain's Swin data pipeline at 224x224 (RandAugment,
# random erasing 0.25), its AdamW schedule and runtime, 8 GPUs x 128 images, and an image
# classifier with a 1000-class linear head trained with label smoothing 0.1. A family base adds
# the spiking backbone and neck, and its own optimizer settings and schedule.
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',
    'mmpretrain::_base_/schedules/imagenet_bs1024_adamw_swin.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmspike.classification'], allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        init_cfg=dict(type='TruncNormal', layer='Linear', std=0.02, bias=0.0)),
)

# 8 GPUs x 128 images.
train_dataloader = dict(batch_size=128)
val_dataloader = dict(batch_size=128)
test_dataloader = val_dataloader
auto_scale_lr = dict(base_batch_size=1024)
