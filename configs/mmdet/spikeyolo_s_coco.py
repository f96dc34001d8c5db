# SpikeYOLO-s (23.15M parameters; 23,153,008 here + 16 fixed DFL weights kept as a buffer): spiking
# backbone and PAN with integer LIF neurons (D=4, T=1), YOLOv8-style anchor-free decoupled head with
# DFL, trained with mmdet's task-aligned assigner, CIoU and distribution focal losses.
# Recipe of upstream's ultralytics run: SGD lr 0.01 (momentum 0.937, wd 5e-4), 300 epochs,
# batch 40 (4 GPUs x 10), 640x640, mosaic + random affine + HSV + flip, mosaic off for the last 10
# epochs, loss gains box 7.5 / cls 0.5 / dfl 1.5, EMA.
#
# Scales: spikeyolo_{n,s,m,l}_coco.py.
_base_ = [
    './_base_/datasets/coco_detection.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    './_base_/default_runtime.py',
]

arch = 's'
in_channels = [128, 256, 512]  # backbone strides 8/16/32 = the PAN's outputs
out5_mlp_ratio = 1  # 2 for m and l
img_scale = (640, 640)
# upstream's I-LIF fires torch.round(clamp(u, 0, 4)): ties round half to even
neuron = dict(type='ILIF', max_spikes=4, round_mode='half_even')

model = dict(
    type='SingleStageDetector',
    data_preprocessor=dict(
        type='DetDataPreprocessor', mean=[0., 0., 0.], std=[255., 255., 255.], bgr_to_rgb=True,
        pad_size_divisor=32),
    backbone=dict(type='mmspike.SpikeYOLOBackbone', arch=arch, T=1, neuron=neuron,
                  out_indices=(1, 2, 3)),
    neck=dict(type='mmspike.SpikeYOLOPAN', in_channels=in_channels,
              out5_mlp_ratio=out5_mlp_ratio, neuron=neuron),
    bbox_head=dict(
        type='mmspike.SpikeYOLOHead',
        num_classes=80,
        in_channels=in_channels,
        strides=[8, 16, 32],
        reg_max=16,
        neuron=neuron,
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True, reduction='mean',
                      loss_weight=0.5),
        loss_bbox=dict(type='CIoULoss', loss_weight=7.5),
        loss_dfl=dict(type='DistributionFocalLoss', loss_weight=1.5)),
    train_cfg=dict(assigner=dict(type='TaskAlignedAssigner', topk=10), alpha=0.5, beta=6.0),
    test_cfg=dict(nms_pre=30000, score_thr=0.001, nms=dict(type='nms', iou_threshold=0.7),
                  max_per_img=300))

train_pipeline = [
    dict(type='Mosaic', img_scale=img_scale, pad_val=114.0),
    dict(type='RandomAffine', max_rotate_degree=0.0, max_shear_degree=0.0,
         max_translate_ratio=0.1, scaling_ratio_range=(0.5, 1.5),
         border=(-img_scale[0] // 2, -img_scale[1] // 2)),
    dict(type='YOLOXHSVRandomAug'),
    dict(type='RandomFlip', prob=0.5),
    # Resize and Pad carry the last epochs, when YOLOXModeSwitchHook turns mosaic/affine off
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='Pad', pad_to_square=True, pad_val=dict(img=(114.0, 114.0, 114.0))),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1, 1), keep_empty=False),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='Pad', pad_to_square=True, pad_val=dict(img=(114.0, 114.0, 114.0))),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=10,
    num_workers=4,
    batch_sampler=None,
    dataset=dict(
        _delete_=True,
        type='MultiImageMixDataset',
        dataset=dict(
            _base_.train_dataloader.dataset,
            filter_cfg=dict(filter_empty_gt=False, min_size=32),
            pipeline=[dict(type='LoadImageFromFile', backend_args=None),
                      dict(type='LoadAnnotations', with_bbox=True)]),
        pipeline=train_pipeline))
val_dataloader = dict(batch_size=8, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

max_epochs = 300
num_last_epochs = 10
train_cfg = dict(max_epochs=max_epochs, val_interval=10)
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.01, momentum=0.937, weight_decay=5e-4, nesterov=True),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=True, begin=0, end=10,
         convert_to_iter_based=True),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.004, by_epoch=True, begin=10,
         end=max_epochs, convert_to_iter_based=True),
]
default_hooks = dict(checkpoint=dict(interval=10, max_keep_ckpts=3))
custom_hooks = [
    # mosaic and affine off for the last epochs (the hook also sets `bbox_head.use_l1`, a flag of
    # YOLOX's head that SpikeYOLOHead does not have and ignores)
    dict(type='YOLOXModeSwitchHook', num_last_epochs=num_last_epochs,
         skip_type_keys=('Mosaic', 'RandomAffine'), priority=48),
    dict(type='EMAHook', ema_type='ExpMomentumEMA', momentum=0.0001, update_buffers=True,
         priority=49),
]
auto_scale_lr = dict(base_batch_size=40)
