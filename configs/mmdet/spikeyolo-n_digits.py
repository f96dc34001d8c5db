# SpikeYOLO-n (the model of spikeyolo_n_coco.py: spiking backbone and PAN with integer LIF neurons
# D=4, T=1, YOLOv8-style anchor-free head with DFL, mmdet's task-aligned assigner) learns the
# digit canvases on a CPU; mmdet's COCO bbox mAP on the held-out canvases.
#
#   python tools/train.py configs/mmdet/spikeyolo-n_digits.py
#   python tools/test.py configs/mmdet/spikeyolo-n_digits.py \
#       work_dirs/spikeyolo-n_digits/epoch_6.pth
#
# Sized for two CPU cores: 64x64 inputs (strides 8/16/32 -> 8x8, 4x4, 2x2 maps), 10 classes,
# 6 epochs of 83 iterations (batch 8), AdamW lr 2e-3 with a cosine decay instead of the
# 300-epoch SGD + mosaic recipe, no EMA.
_base_ = [
    './_base_/datasets/digit_canvas_instance.py',
    './_base_/schedules/digit_canvas_6e.py',
    './_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmspike.detection'], allow_failed_imports=False)

arch = 'n'
in_channels = [96, 192, 384]  # backbone strides 8/16/32 = the PAN's outputs (scale n)
neuron = dict(type='ILIF', max_spikes=4)
model = dict(
    type='SingleStageDetector',
    data_preprocessor=dict(
        type='DetDataPreprocessor', mean=[0., 0., 0.], std=[255., 255., 255.], bgr_to_rgb=False,
        pad_size_divisor=32),
    backbone=dict(type='mmspike.SpikeYOLOBackbone', arch=arch, T=1, neuron=neuron,
                  out_indices=(1, 2, 3)),
    neck=dict(type='mmspike.SpikeYOLOPAN', in_channels=in_channels, out5_mlp_ratio=1,
              neuron=neuron),
    bbox_head=dict(
        type='mmspike.SpikeYOLOHead',
        num_classes=10,
        in_channels=in_channels,
        strides=[8, 16, 32],
        reg_max=16,
        neuron=neuron,
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True, reduction='mean',
                      loss_weight=0.5),
        loss_bbox=dict(type='CIoULoss', loss_weight=7.5),
        loss_dfl=dict(type='DistributionFocalLoss', loss_weight=1.5)),
    train_cfg=dict(assigner=dict(type='TaskAlignedAssigner', topk=10), alpha=0.5, beta=6.0),
    test_cfg=dict(nms_pre=1000, score_thr=0.001, nms=dict(type='nms', iou_threshold=0.7),
                  max_per_img=20))
# boxes only
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(64, 64), keep_ratio=True),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='Resize', scale=(64, 64), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(batch_size=8, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(metric='bbox')
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(lr=2e-3), paramwise_cfg=dict(bias_decay_mult=0.0))

default_hooks = dict(logger=dict(interval=20), checkpoint=dict(interval=6))
randomness = dict(seed=0)
