# Smoke-test version of spikformer-v2_dvs-gesture.py on the bundled release-layout sample
# (tests/data/dvs_gesture_sample/DvsGesture: 2 AEDAT 3.1 recordings of real events, 3 labelled
# clips each, user01 train / user24 test; see its PROVENANCE.md): the same model and pipelines
# at 128x128 but T=4 (T=16 takes ~35 s per iteration on one CPU core), one training iteration,
# then validation on the 3 test clips:
#
#   python tools/train.py configs/neuromorphic/spikformer-v2_dvs-gesture_sample.py
_base_ = ['./spikformer-v2_dvs-gesture.py']

T = 4
model = dict(backbone=dict(T=T))
train_pipeline = [dict(t, num_bins=T) if t['type'] == 'mmspike.EventsToFrames' else t
                  for t in _base_.train_pipeline]
test_pipeline = [dict(t, num_bins=T) if t['type'] == 'mmspike.EventsToFrames' else t
                 for t in _base_.test_pipeline]

_root = dict(data_root='tests/data/dvs_gesture_sample/DvsGesture')
train_dataloader = dict(batch_size=2, num_workers=0,
                        dataset=dict(_root, pipeline=train_pipeline))
val_dataloader = dict(batch_size=2, num_workers=0,
                      dataset=dict(_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
del _root

param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False)]
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=1, val_interval=1)
log_processor = dict(by_epoch=False)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(type='CheckpointHook', interval=1, by_epoch=False, max_keep_ckpts=1,
                    save_best=None))
randomness = dict(seed=0, deterministic=False)
