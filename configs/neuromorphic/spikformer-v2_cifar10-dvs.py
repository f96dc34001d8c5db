# Spikformer V2 on CIFAR10-DVS (10 classes, DVS128 128x128 event streams), T=16.
#
# Spikformer V2 released no code or neuromorphic recipe; this follows the authors' released
# Spikformer code for CIFAR10-DVS (ZK-Zhou/spikformer, cifar10dvs/train.py and model.py defaults),
# which V2 builds on: T=16 frames per sample, each frame 1/16 of the recording's events by count
# (spikingjelly's split_by='number'), 128x128 input, width 256, depth 2, 16 heads, drop path 0.1,
# batch 16, AdamW lr 1e-3, weight decay 0.06, timm cosine schedule (10 warm-up epochs from 1e-5,
# cosine to 1e-5 at epoch 96, then 10 cool-down epochs: 106 in all), label smoothing 0.1, mixup
# alpha 0.5 on half of the batches, one horizontal flip per clip; train/test = the first 90% /
# last 10% of each class in file-name order. Left out: upstream's SNNAugmentWide (random
# rolling/rotation/shear of the event frames). The backbone is mmspike's Spikformer V2 (Spiking
# Convolutional Stem, stride 16: 8x8 tokens at 128x128, as Spikformer's 16x16 patches) with 2
# input channels (OFF, ON). Spikformer's frames put the N mod 16 leftover events in the last frame;
# EventsToFrames(split_by='count') spreads them (bin sizes differ by at most one event).
#
# Data layout (data/cifar10_dvs): <class>/cifar10_<class>_<i>.{aedat,aedat4,npz}
_base_ = ['mmpretrain::_base_/default_runtime.py']

custom_imports = dict(imports=['mmspike.classification'], allow_failed_imports=False)

num_classes = 10
T = 16
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='mmspike.SpikformerV2',
        arch=dict(embed_dims=256, depth=2, num_heads=16),
        in_channels=2,
        T=T,
        neuron=dict(type='LIF', tau=2.0, v_threshold=1.0),
        attn_neuron=dict(type='LIF', tau=2.0, v_threshold=0.5),
        drop_path_rate=0.1),
    # Spikformer's classifier reads the time-averaged pooled features (no neuron).
    neck=dict(type='mmspike.SpikeGlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=num_classes,
        in_channels=256,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original',
                  loss_weight=1.0),
        topk=(1, 5)),
    train_cfg=dict(augments=[dict(type='Mixup', alpha=0.5)], probs=[0.5]))

# Clips arrive as [B, T, 2, H, W]; this preprocessor hands the backbone [T, B, 2, H, W].
data_preprocessor = dict(type='mmspike.EventClsDataPreprocessor', num_classes=num_classes)

train_pipeline = [
    dict(type='mmspike.LoadEventClip'),
    dict(type='mmspike.EventsToFrames', num_bins=T, split_by='count'),
    dict(type='mmspike.RandomFlipClip', prob=0.5),
    dict(type='mmspike.PackEventInputs'),
]
test_pipeline = [
    dict(type='mmspike.LoadEventClip'),
    dict(type='mmspike.EventsToFrames', num_bins=T, split_by='count'),
    dict(type='mmspike.PackEventInputs'),
]

dataset_type = 'mmspike.CIFAR10DVSDataset'
data_root = 'data/cifar10_dvs'
train_dataloader = dict(
    batch_size=16,
    num_workers=4,
    dataset=dict(type=dataset_type, data_root=data_root, split='train', train_ratio=0.9,
                 pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(
    batch_size=16,
    num_workers=4,
    dataset=dict(type=dataset_type, data_root=data_root, split='test', train_ratio=0.9,
                 test_mode=True, pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.06, eps=1e-8))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=True, begin=0, end=10,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=10, end=96,
         convert_to_iter_based=True),
]  # epochs 96-106: the cool-down, at eta_min
train_cfg = dict(by_epoch=True, max_epochs=106, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=16, enable=False)

default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3,
                                     save_best='auto'))
randomness = dict(seed=42, deterministic=False)
