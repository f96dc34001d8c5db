# Smoke-test version of e-spikeformer-19m_hardvs.py on the bundled real-event sample
# (tests/data/hardvs_sample: 4 train / 2 val clips cut from a DVXplorer and an N-MNIST recording,
# labels 0/1 of the 300 HAR-DVS classes; see its README). Same model (19M, T=8, 2 channels, 300
# classes), raw .npz events -> 8 fixed-duration bins of polarity counts, 64x64 input, 2 epochs:
#
#   python tools/train.py configs/hardvs/e-spikeformer-19m_hardvs_sample.py
_base_ = ['./e-spikeformer-19m_hardvs.py']

sample_root = 'tests/data/hardvs_sample'
# the full config's raw-event pipelines (event_train_pipeline, event_test_pipeline) at 64x64
_size = {'mmspike.ResizeClip': dict(scale=73), 'mmspike.CenterCropClip': dict(crop_size=64)}
train_pipeline = [dict(t, **_size.get(t['type'], {})) for t in _base_.event_train_pipeline]
test_pipeline = [dict(t, **_size.get(t['type'], {})) for t in _base_.event_test_pipeline]
del _size
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    dataset=dict(data_root=sample_root, ann_file='ann_events_train.txt', data_prefix='',
                 modality='events', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=2,
    num_workers=0,
    dataset=dict(data_root=sample_root, ann_file='ann_events_val.txt', data_prefix='',
                 modality='events', pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(optimizer=dict(lr=1e-4))
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=True)]
train_cfg = dict(by_epoch=True, max_epochs=2, val_interval=1)
auto_scale_lr = dict(base_batch_size=2, enable=False)

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(type='CheckpointHook', interval=2, max_keep_ckpts=1, save_best=None))
randomness = dict(seed=0, deterministic=False)
