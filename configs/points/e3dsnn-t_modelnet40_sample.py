# E3DSNN-T on the bundled ModelNet40 sample (tests/data/modelnet40_sample: 2 training and 2 test
# shapes, 1,000 real points each): one training iteration and an evaluation through
# tools/train.py and tools/test.py. A test of the point-cloud pipeline, not of learning.
_base_ = ['./e3dsnn-t_modelnet40.py']

data_root = 'tests/data/modelnet40_sample/modelnet40_normal_resampled'
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, num_points=None))
val_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, num_points=None))
test_dataloader = val_dataloader

param_scheduler = [dict(type='MultiStepLR', by_epoch=True, milestones=[1], gamma=0.1)]
train_cfg = dict(max_epochs=1, val_interval=1)
default_hooks = dict(logger=dict(type='LoggerHook', interval=1),
                     checkpoint=dict(interval=1, max_keep_ckpts=1))
randomness = dict(seed=0, deterministic=False)
