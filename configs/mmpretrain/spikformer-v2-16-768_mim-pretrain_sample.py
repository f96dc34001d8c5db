# Smoke run of the Spikformer V2 masked-image-modelling recipe on a CPU: a few iterations on the
# five bundled photos of data/cls_sample, 64x64 crops (a 4x4 patch grid) and a small Spikformer V2
# of the same design (width 64, 2 encoder blocks) so that it finishes in seconds. Same model, loss
# and optimizer as the ImageNet config otherwise.
#   python tools/train.py configs/mmpretrain/spikformer-v2-16-768_mim-pretrain_sample.py
_base_ = ['./spikformer-v2-16-768_mim-pretrain_t1_8xb256_in1k.py']

# Shared with spikformer-v2-16-768_mim-finetune_sample.py (the fine-tune needs the same arch).
sample_arch = dict(_delete_=True, embed_dims=64, depth=2)
crop = 64

model = dict(
    backbone=dict(arch=sample_arch),
    neck=dict(num_patches=(crop // 16)**2, embed_dim=64, decoder_embed_dim=64, decoder_depth=2,
              decoder_num_heads=4))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=crop, crop_ratio_range=(0.2, 1.0), backend='pillow',
         interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    drop_last=True,
    sampler=dict(_delete_=True, type='InfiniteSampler', shuffle=True),
    dataset=dict(
        _delete_=True,
        type='CustomDataset',
        data_root='data/cls_sample',
        data_prefix='images',
        with_label=False,
        pipeline=train_pipeline))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1.5e-4 * 4 / 256, betas=(0.9, 0.95), weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0, flat_decay_mult=0.0))
param_scheduler = [dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0, end=2)]
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=3)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(type='CheckpointHook', interval=3, by_epoch=False, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
resume = False
randomness = dict(seed=0, diff_rank_seed=False)
