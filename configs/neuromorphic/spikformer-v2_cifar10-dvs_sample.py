# Smoke-test version of spikformer-v2_cifar10-dvs.py on the bundled release-layout sample
# (tests/data/cifar10_dvs_sample: 2 classes x 3 AEDAT 2.0 files of real events, see its
# PROVENANCE.md): the same model and pipelines at 128x128 but T=4 (T=16 takes ~35 s per
# iteration on one CPU core), 4 train / 2 test files (train_ratio 0.5), one training iteration,
# then validation:
#
#   python tools/train.py configs/neuromorphic/spikformer-v2_cifar10-dvs_sample.py
_base_ = ['./spikformer-v2_cifar10-dvs.py']

T = 4
model = dict(backbone=dict(T=T))
train_pipeline = [dict(t, num_bins=T) if t['type'] == 'mmspike.EventsToFrames' else t
                  for t in _base_.train_pipeline]
test_pipeline = [dict(t, num_bins=T) if t['type'] == 'mmspike.EventsToFrames' else t
                 for t in _base_.test_pipeline]

_sample = dict(data_root='tests/data/cifar10_dvs_sample', classes=('airplane', 'automobile'),
               train_ratio=0.5)
train_dataloader = dict(batch_size=2, num_workers=0,
                        dataset=dict(_sample, pipeline=train_pipeline))
val_dataloader = dict(batch_size=2, num_workers=0,
                      dataset=dict(_sample, pipeline=test_pipeline))
test_dataloader = val_dataloader
del _sample

param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False)]
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=1, val_interval=1)
log_processor = dict(by_epoch=False)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(type='CheckpointHook', interval=1, by_epoch=False, max_keep_ckpts=1,
                    save_best=None))
randomness = dict(seed=0, deterministic=False)
