# E-SpikeFormer 19M on HAR-DVS (300 human activities, DAVIS346 346x260), the recipe of the
# Spike-Driven Transformer V3 HAR-DVS code: T=8 consecutive rendered event frames, grayscale ->
# Resize 256 (bicubic) -> CenterCrop 224 -> 2 polarity channels, 2-channel 19M model, 300 classes,
# AdamW (base lr 4e-5 per 256 samples, wd 1e-2), 100 epochs, label smoothing 0.1, logits averaged
# over T. Unlike upstream, test clips are the centred T frames, so evaluation is deterministic, and
# a training clip is flipped as a whole (upstream flips each frame independently).
#
# Data layout (data/hardvs):
#   rawframes/action_001/dvSave-2021_10_15_19_18_02/<frames>.png   (the "Event Images" release)
#   list/{train,val,test}_label.txt   lines: <path> [<total_frames>] <0-based label>
# For the compact .npz release (keys t, x, y, p) use `event_train_pipeline` /
# `event_test_pipeline` below and list .npz paths.
_base_ = ['mmpretrain::_base_/default_runtime.py']

custom_imports = dict(imports=['mmspike.classification'], allow_failed_imports=False)

num_classes = 300
T = 8
# Upstream's HAR-DVS 19M model fires raw integers 0..4 (D=4, D_Norm=1) in every layer.
neuron = dict(type='MultiSpike', max_spikes=4, norm=1)

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='mmspike.ESpikeFormer',
        arch='19m',
        in_channels=2,
        T=T,
        neuron=neuron,
        out_indices=(3, )),
    # GAP -> integer neuron (norm 1, as upstream's pre-classifier neuron) -> mean over T.
    neck=dict(type='mmspike.SpikeGlobalAveragePooling', neuron=neuron),
    head=dict(
        type='LinearClsHead',
        num_classes=num_classes,
        in_channels=360,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original',
                  loss_weight=1.0),
        topk=(1, 5)))

# Clips arrive as [B, T, 2, H, W]; this preprocessor hands the backbone [T, B, 2, H, W].
# The polarity channels are 0/1 already: no mean/std.
data_preprocessor = dict(type='mmspike.EventClsDataPreprocessor', num_classes=num_classes)

train_pipeline = [
    dict(type='mmspike.SampleFrameClip', clip_len=T, test_mode=False),
    dict(type='mmspike.LoadFrameClip'),
    dict(type='mmspike.ResizeClip', scale=256, interpolation='bicubic'),
    dict(type='mmspike.CenterCropClip', crop_size=224),
    dict(type='mmspike.RandomFlipClip', prob=0.5),
    dict(type='mmspike.FramesToPolarity', low=0.12, high=0.3, cap=0.78),
    dict(type='mmspike.PackEventInputs'),
]
test_pipeline = [
    dict(type='mmspike.SampleFrameClip', clip_len=T, test_mode=True),
    dict(type='mmspike.LoadFrameClip'),
    dict(type='mmspike.ResizeClip', scale=256, interpolation='bicubic'),
    dict(type='mmspike.CenterCropClip', crop_size=224),
    dict(type='mmspike.FramesToPolarity', low=0.12, high=0.3, cap=0.78),
    dict(type='mmspike.PackEventInputs'),
]
# The same input geometry from raw event streams: T fixed-duration bins of polarity counts.
event_train_pipeline = [
    dict(type='mmspike.LoadEvents'),
    dict(type='mmspike.EventsToFrames', num_bins=T, split_by='time'),
    dict(type='mmspike.ResizeClip', scale=256, interpolation='area'),
    dict(type='mmspike.CenterCropClip', crop_size=224),
    dict(type='mmspike.RandomFlipClip', prob=0.5),
    dict(type='mmspike.PackEventInputs'),
]
event_test_pipeline = [
    dict(type='mmspike.LoadEvents'),
    dict(type='mmspike.EventsToFrames', num_bins=T, split_by='time'),
    dict(type='mmspike.ResizeClip', scale=256, interpolation='area'),
    dict(type='mmspike.CenterCropClip', crop_size=224),
    dict(type='mmspike.PackEventInputs'),
]

dataset_type = 'mmspike.HARDVSDataset'
data_root = 'data/hardvs'
_clips = dict(type=dataset_type, data_root=data_root, data_prefix='rawframes')
train_dataloader = dict(
    batch_size=24,  # per GPU; upstream trained on 3 GPUs (72 clips per step)
    num_workers=8,
    dataset=dict(_clips, ann_file='list/train_label.txt', pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(
    batch_size=24,
    num_workers=8,
    dataset=dict(_clips, ann_file='list/val_label.txt', test_mode=True, pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
val_evaluator = dict(type='Accuracy', topk=(1, 5))
# Upstream reports accuracy on the test list.
test_dataloader = dict(
    val_dataloader, dataset=dict(val_dataloader['dataset'], ann_file='list/test_label.txt'))
test_evaluator = val_evaluator
del _clips

# AdamW, lr = blr * total_batch / 256 with blr 4e-5 (upstream's linear scaling rule), weight decay
# 1e-2 on weights only (biases and norm parameters get none), 10 warm-up epochs then a cosine to
# 1e-6, per iteration.
total_batch = 72
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=4e-5 * total_batch / 256, weight_decay=1e-2,
                   betas=(0.9, 0.999)),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0, flat_decay_mult=0.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=10,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=10, end=100,
         convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=1)
val_cfg = dict()
test_cfg = dict()
# `tools/train.py --cfg-options auto_scale_lr.enable=True` rescales lr to another total batch.
auto_scale_lr = dict(base_batch_size=total_batch, enable=False)

default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3,
                                     save_best='auto'))
randomness = dict(seed=42, deterministic=False)
