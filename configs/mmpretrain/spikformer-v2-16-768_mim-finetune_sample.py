# Smoke run of the Spikformer V2 fine-tuning on a CPU: the small encoder of
# spikformer-v2-16-768_mim-pretrain_sample.py, classified into the 4 classes of the bundled photos
# (data/cls_sample), 64x64 crops, a few iterations. Convert the pre-training checkpoint first:
#   python tools/model_converters/spike_mae2backbone.py \
#       work_dirs/spikformer-v2-16-768_mim-pretrain_sample/iter_3.pth \
#       work_dirs/spikformer-v2-16-768_mim-pretrain_sample/backbone.pth \
#       --config configs/mmpretrain/spikformer-v2-16-768_mim-finetune_sample.py
#   python tools/train.py configs/mmpretrain/spikformer-v2-16-768_mim-finetune_sample.py
_base_ = ['./spikformer-v2-16-768_mim-finetune_t1_8xb128_in1k.py']

pretrained_backbone = 'work_dirs/spikformer-v2-16-768_mim-pretrain_sample/backbone.pth'
sample_arch = dict(_delete_=True, embed_dims=64, depth=2)
crop = 64

model = dict(
    backbone=dict(arch=sample_arch),
    head=dict(num_classes=4, in_channels=64),
    train_cfg=dict(_delete_=True))
data_preprocessor = dict(num_classes=4)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=crop, backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=crop * 8 // 7, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=crop),
    dict(type='PackInputs'),
]
sample_dataset = dict(type='CustomDataset', data_root='data/cls_sample', data_prefix='images')
train_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False, drop_last=True,
    sampler=dict(_delete_=True, type='InfiniteSampler', shuffle=True),
    dataset=dict(_delete_=True, pipeline=train_pipeline, **sample_dataset))
val_dataloader = dict(
    batch_size=5, num_workers=0, persistent_workers=False,
    dataset=dict(_delete_=True, pipeline=test_pipeline, **sample_dataset))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(lr=5e-4 * 4 / 256))
param_scheduler = [dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0, end=2)]
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=2, val_interval=2)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
custom_hooks = [dict(type='mmspike.PretrainedBackboneHook', checkpoint=pretrained_backbone)]
