# The HAR-DVS route (event stream -> T fixed-duration frames of ON/OFF counts -> E-SpikeFormer,
# logits averaged over T) on a small real event set a CPU learns: the digit event streams
# (mmspike.datasets.digit_events: the real scikit-learn digits seen by a simulated 34x34 event
# camera making N-MNIST's three saccades), 1,347 train / 450 held-out digits, 10 classes.
#
#   python tools/train.py configs/hardvs/e-spikeformer-2m_digits-events.py
#   python tools/test.py configs/hardvs/e-spikeformer-2m_digits-events.py \
#       work_dirs/e-spikeformer-2m_digits-events/epoch_6.pth
#
# Model: E-SpikeFormer 2M, 2 polarity channels, T=4 time steps (one per 75 ms of the 300 ms
# stream), integer LIF neurons (ILIF: leak 0.25, D=4, raw integer spikes) that carry their
# membrane across the T steps. 32x32 input (the 34x34 sensor resized), AdamW lr 2e-3, 6 epochs.
_base_ = ['mmpretrain::_base_/default_runtime.py']

custom_imports = dict(imports=['mmspike.classification'], allow_failed_imports=False)

num_classes = 10
T = 4
neuron = dict(type='ILIF', max_spikes=4, norm=1, leak=0.25)
model = dict(
    type='ImageClassifier',
    backbone=dict(type='mmspike.ESpikeFormer', arch='2m', in_channels=2, T=T, neuron=neuron,
                  out_indices=(3, )),
    neck=dict(type='mmspike.SpikeGlobalAveragePooling', neuron=neuron),
    head=dict(type='LinearClsHead', num_classes=num_classes, in_channels=128,
              loss=dict(type='CrossEntropyLoss', loss_weight=1.0), topk=(1, )))
data_preprocessor = dict(type='mmspike.EventClsDataPreprocessor', num_classes=num_classes)

pipeline = [
    dict(type='mmspike.LoadEvents'),
    dict(type='mmspike.EventsToFrames', num_bins=T, split_by='time'),
    dict(type='mmspike.ResizeClip', scale=(32, 32), interpolation='area'),
    dict(type='mmspike.PackEventInputs'),
]
dataset_type = 'mmspike.DigitEventsDataset'
train_dataloader = dict(
    batch_size=32,
    num_workers=0,
    dataset=dict(type=dataset_type, split='train', pipeline=pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(
    batch_size=64,
    num_workers=0,
    dataset=dict(type=dataset_type, split='test', test_mode=True, pipeline=pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

max_epochs = 6
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.01),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=40),
    dict(type='CosineAnnealingLR', T_max=max_epochs, by_epoch=True, eta_min=1e-5),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='CheckpointHook', interval=max_epochs))
randomness = dict(seed=0)
