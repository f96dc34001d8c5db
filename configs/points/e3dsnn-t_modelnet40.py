# E3DSNN-T on ModelNet40 (1,874,216 parameters): upstream E-3DSNN's Pointcept config
# cls-E3DSNN-v1m1-0-T (bollossom/E-3DSNN@dbe5d17) as an mmpretrain config.
# Recipe as upstream: 300 epochs, batch 16 in total, SGD lr 0.1 (momentum 0.9, Nesterov,
# weight decay 1e-3), lr x0.1 at 60% and 80% of training, cross-entropy with label smoothing 0.2;
# 8,192 points per shape by farthest point sampling, unit-sphere normalisation, random scale
# [0.9, 1.1] and shift +-0.2 in training, 0.01 voxels holding one random point each (train and test,
# as upstream), xyz + normal as voxel features.
# Data: data/modelnet40_normal_resampled
# (https://shapenet.cs.stanford.edu/media/modelnet40_normal_resampled.zip).
_base_ = ['mmpretrain::_base_/default_runtime.py']

custom_imports = dict(imports=['mmspike.points'], allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    data_preprocessor=dict(type='mmspike.PointsDataPreprocessor', shape_multiple=16),
    backbone=dict(type='mmspike.E3DSNN', arch='tiny', in_channels=6),
    neck=dict(type='mmspike.SparseGlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=40,
        in_channels=128,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.2, mode='original'),
        init_cfg=dict(type='TruncNormal', layer='Linear', std=0.02, bias=0.),
        topk=(1, )))

data_root = 'data/modelnet40_normal_resampled'
num_points = 8192
# FPS indices of every shape, computed once (seconds per shape on a CPU core) and kept here
fps_cache = 'data/modelnet40_fps_cache'
grid_size = 0.01
train_pipeline = [
    dict(type='mmspike.NormalizePoints'),
    dict(type='mmspike.RandomScalePoints', scale=(0.9, 1.1)),
    dict(type='mmspike.RandomShiftPoints', shift=((-0.2, 0.2), (-0.2, 0.2), (-0.2, 0.2))),
    dict(type='mmspike.SpikeVoxelCoding', grid_size=grid_size, mode='random'),
    dict(type='mmspike.PackPointsInputs'),
]
test_pipeline = [
    dict(type='mmspike.NormalizePoints'),
    dict(type='mmspike.SpikeVoxelCoding', grid_size=grid_size, mode='random'),
    dict(type='mmspike.PackPointsInputs'),
]
train_dataloader = dict(
    batch_size=16,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='mmspike.ModelNet40Dataset', data_root=data_root, split='train',
                 num_points=num_points, sampling='fps', sampling_cache=fps_cache,
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=16,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='mmspike.ModelNet40Dataset', data_root=data_root, split='test',
                 num_points=num_points, sampling='fps', sampling_cache=fps_cache,
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-3, nesterov=True))
param_scheduler = [dict(type='MultiStepLR', by_epoch=True, milestones=[180, 240], gamma=0.1)]
# upstream evaluates every 3 epochs (epoch=300 with eval_epoch=100: each "epoch" loops the data 3x)
train_cfg = dict(by_epoch=True, max_epochs=300, val_interval=3)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=16)

default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=3, max_keep_ckpts=2,
                                     save_best='accuracy/top1', rule='greater'))
