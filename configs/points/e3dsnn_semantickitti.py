# E-3DSNN U-Net on SemanticKITTI (20,049,683 parameters, as upstream's code counts them): upstream
# E-3DSNN's Pointcept config semantic_kitti/semseg-3dsnn-v1m1-0-base (bollossom/E-3DSNN@dbe5d17) as
# an mmdet3d config: mmdet3d's MinkUNet segmentor with mmspike's E3DSNNUNet backbone and a
# point-wise linear head (upstream's final 1x1 submanifold conv), mmdet3d's SemanticKittiDataset,
# transforms and SegMetric (mIoU). Needs requirements/points.txt (mmdet3d 1.4.0).
# Recipe as upstream: 100 epochs, batch 24 in total, AdamW lr 0.002 (weight decay 0.005),
# one-cycle (4% cosine warm-up from lr / 10, cosine down to lr / 1000), class-weighted
# cross-entropy; points clipped to [-35.2, 35.2] x [-35.2, 35.2] x [-4, 2] m, 0.05 m voxels with one point each, xyz + intensity
# as voxel features; training augmentation: rotation about z in [-pi, pi] (p 0.5), scale
# [0.9, 1.1], x / y flips (p 0.5 each), jitter (sigma 0.005, clipped at 0.02).
# Differences: upstream keeps a random point per voxel in training (here the first), mmdet's
# weighted cross-entropy averages over the non-ignored voxels (torch's over the sum of their
# weights), evaluation is on every point of a scan (upstream: on the clipped ones), and
# upstream's test-time 4-rotation ensemble is not configured.
# Data: data/semantickitti in mmdet3d's layout (tools/create_data.py semantickitti).
_base_ = ['mmdet3d::_base_/default_runtime.py']

custom_imports = dict(imports=['mmspike.points.seg3d'], allow_failed_imports=False)

# mmdet3d's SemanticKittiDataset class names (checked against its METAINFO): 'bus' is
# SemanticKITTI's other-vehicle, 'trunck' / 'terrian' its trunk / terrain
class_names = [
    'car', 'bicycle', 'motorcycle', 'truck', 'bus', 'person', 'bicyclist', 'motorcyclist', 'road',
    'parking', 'sidewalk', 'other-ground', 'building', 'fence', 'vegetation', 'trunck', 'terrian',
    'pole', 'traffic-sign'
]
# SemanticKITTI's raw label -> 19 training classes (its learning map); 19 = ignored
labels_map = {
    0: 19, 1: 19, 10: 0, 11: 1, 13: 4, 15: 2, 16: 4, 18: 3, 20: 4, 30: 5, 31: 6, 32: 7, 40: 8,
    44: 9, 48: 10, 49: 11, 50: 12, 51: 13, 52: 19, 60: 8, 70: 14, 71: 15, 72: 16, 80: 17, 81: 18,
    99: 19, 252: 0, 253: 6, 254: 5, 255: 7, 256: 4, 257: 4, 258: 3, 259: 4
}
metainfo = dict(classes=class_names, seg_label_mapping=labels_map, max_label=259)
class_weight = [
    3.1557, 8.7029, 7.8281, 6.1354, 6.3161, 7.9937, 8.9704, 10.1922, 1.6155, 4.2187, 1.9385,
    5.5455, 2.0198, 2.6261, 1.3212, 5.1102, 2.5492, 5.8585, 7.3929
]

model = dict(
    type='MinkUNet',
    data_preprocessor=dict(type='mmspike.GridSampleSegDataPreprocessor', voxel_size=0.05),
    backbone=dict(type='mmspike.E3DSNNUNet', arch='semantickitti', in_channels=4),
    decode_head=dict(
        type='MinkUNetHead',
        channels=256,
        num_classes=19,
        dropout_ratio=0,
        ignore_index=19,
        loss_decode=dict(type='mmdet.CrossEntropyLoss', use_sigmoid=False,
                         class_weight=class_weight, avg_non_ignore=True, loss_weight=1.0),
        init_cfg=dict(type='TruncNormal', layer='Linear', std=0.02, bias=0.)),
    train_cfg=dict(),
    test_cfg=dict())

dataset_type = 'mmspike.SemanticKittiSegDataset'  # mmdet3d's, meta info as plain dicts
data_root = 'data/semantickitti/'
point_cloud_range = [-35.2, -35.2, -4, 35.2, 35.2, 2]
load = [
    dict(type='LoadPointsFromFile', coord_type='LIDAR', load_dim=4, use_dim=4),
    dict(type='LoadAnnotations3D', with_bbox_3d=False, with_label_3d=False, with_seg_3d=True,
         seg_3d_dtype='np.int32', seg_offset=2**16, dataset_type='semantickitti'),
    dict(type='PointSegClassMapping'),
    dict(type='PointsRangeFilter', point_cloud_range=point_cloud_range),
]
train_pipeline = load + [
    dict(type='mmcv.RandomApply', prob=0.5,
         transforms=[dict(type='mmdet3d.GlobalRotScaleTrans', rot_range=[-3.14159265, 3.14159265],
                          scale_ratio_range=[1.0, 1.0], translation_std=[0, 0, 0])]),
    dict(type='GlobalRotScaleTrans', rot_range=[0, 0], scale_ratio_range=[0.9, 1.1],
         translation_std=[0, 0, 0]),
    dict(type='RandomFlip3D', sync_2d=False, flip_ratio_bev_horizontal=0.5,
         flip_ratio_bev_vertical=0.5),
    dict(type='RandomJitterPoints', jitter_std=[0.005, 0.005, 0.005], clip_range=[-0.02, 0.02]),
    dict(type='Pack3DDetInputs', keys=['points', 'pts_semantic_mask'])
]
# every point of a scan is evaluated (SegMetric compares with the labels as read from the file, so
# no range filter at test time; upstream evaluates on the clipped points)
test_pipeline = load[:-1] + [dict(type='Pack3DDetInputs', keys=['points', 'pts_semantic_mask'])]

train_dataloader = dict(
    batch_size=3,  # x 8 GPUs = 24
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, ann_file='semantickitti_infos_train.pkl',
                 pipeline=train_pipeline, metainfo=metainfo, ignore_index=19))
val_dataloader = dict(
    batch_size=1,
    num_workers=1,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, ann_file='semantickitti_infos_val.pkl',
                 pipeline=test_pipeline, metainfo=metainfo, ignore_index=19, test_mode=True))
test_dataloader = val_dataloader
val_evaluator = dict(type='SegMetric')
test_evaluator = val_evaluator

max_epochs = 100
# upstream's OneCycleLR (max 0.002, 4% warm-up from 0.002 / 10 and down to 0.002 / 1000, cosine both
# ways) as two chained cosine phases: mmengine's OneCycleLR keeps a function in its state, which a
# weights-only checkpoint load refuses
optim_wrapper = dict(type='OptimWrapper',
                     optimizer=dict(type='AdamW', lr=0.002 / 10, weight_decay=0.005))
warmup_epochs = 4
param_scheduler = [
    dict(type='CosineAnnealingLR', eta_min=0.002, T_max=warmup_epochs, begin=0,
         end=warmup_epochs, by_epoch=True, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=0.002 / 1000, T_max=max_epochs - warmup_epochs,
         begin=warmup_epochs, end=max_epochs, by_epoch=True, convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=50)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
auto_scale_lr = dict(enable=False, base_batch_size=24)
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=10, max_keep_ckpts=3))
