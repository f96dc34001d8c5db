# Smoke run of the CIFAR-10 recipe on a CPU: the bundled real photos (data/cls_sample, 4 folders
# read as labels 0-3) shrunk to 32x32, one training iteration (Mixup, RandAugment, RandomErasing as
# in the full config) and an evaluation through tools/train.py / tools/test.py. CIFAR's own pickled
# batches cannot be sampled (mmpretrain checks the md5 of the full files), so the images come in as
# files and are resized to CIFAR's size first.
#   python tools/train.py configs/mmpretrain/spikformer-v2-4-384_t4_cifar10_sample.py
_base_ = ['./spikformer-v2-4-384_t4_1xb128_cifar10.py']

# The full config's train pipeline after the file loading (MMEngine cannot extend a base list).
mean = [125.307, 122.961, 113.8575]  # the full config's CIFAR-10 mean (x 255)
to_cifar = [dict(type='LoadImageFromFile'), dict(type='Resize', scale=(32, 32), backend='pillow')]
train_pipeline = to_cifar + [
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandAugment', policies='timm_increasing', num_policies=1, total_level=10,
         magnitude_level=9, magnitude_std=0.4,
         hparams=dict(pad_val=[round(x) for x in mean], interpolation='bicubic')),
    dict(type='RandomErasing', erase_prob=0.25, mode='const', min_area_ratio=0.02,
         max_area_ratio=1 / 3, fill_color=mean),
    dict(type='PackInputs'),
]
sample_dataset = dict(type='CustomDataset', data_root='data/cls_sample', data_prefix='images',
                      _delete_=True)
train_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False, drop_last=True,
    sampler=dict(_delete_=True, type='InfiniteSampler', shuffle=True),
    dataset=dict(pipeline=train_pipeline, **sample_dataset))
val_dataloader = dict(
    batch_size=5, num_workers=0, persistent_workers=False,
    dataset=dict(pipeline=to_cifar + [dict(type='PackInputs')], **sample_dataset))
test_dataloader = val_dataloader

param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False, begin=0, end=1)]
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=1, val_interval=1)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(type='CheckpointHook', interval=1, by_epoch=False, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
auto_scale_lr = dict(_delete_=True, base_batch_size=4)
