# The README demo: a small spiking CNN (integer MultiSpike neurons, D=4, T=1) learns scikit-learn's
# 8x8 handwritten digits on a CPU in about a minute. Stock mmpretrain classifier, head and metric.
_base_ = ['mmpretrain::_base_/default_runtime.py']

custom_imports = dict(imports=['mmspike.classification'], allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='mmspike.SpikingConvNet',
        arch='tiny',
        in_channels=1,
        T=1,
        neuron=dict(type='MultiSpike', max_spikes=4)),
    neck=dict(type='mmspike.SpikeGlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=128,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, )))

data_preprocessor = dict(num_classes=10, mean=[127.5], std=[127.5], to_rgb=False)

train_pipeline = [dict(type='PackInputs')]
test_pipeline = [dict(type='PackInputs')]

train_dataloader = dict(
    batch_size=32,
    num_workers=0,
    dataset=dict(type='mmspike.DigitsDataset', split='train', pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(
    batch_size=128,
    num_workers=0,
    dataset=dict(type='mmspike.DigitsDataset', split='test', pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.01))
param_scheduler = [dict(type='CosineAnnealingLR', T_max=8, by_epoch=True, eta_min=1e-5)]
train_cfg = dict(by_epoch=True, max_epochs=8, val_interval=4)
val_cfg = dict()
test_cfg = dict()

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(type='CheckpointHook', interval=4, max_keep_ckpts=2))
randomness = dict(seed=0, deterministic=False)
