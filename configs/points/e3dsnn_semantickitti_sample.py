# E-3DSNN on the bundled SemanticKITTI sample (tests/data/semantickitti_sample: mmdet3d's test
# excerpt of sequence 00 scan 000000, 50 real points with their labels): one training iteration
# and an mIoU evaluation through tools/train.py and tools/test.py. A test of the pipeline, not of
# learning.
_base_ = ['./e3dsnn_semantickitti.py']

data_root = 'tests/data/semantickitti_sample/'
sample = dict(data_root=data_root, ann_file='semantickitti_infos.pkl',
              data_prefix=dict(pts='sequences/00/velodyne',
                               pts_semantic_mask='sequences/00/labels'))
# (46 of the 50 points lie in the recipe's range; labels building, vegetation, trunk, pole and
# other-structure, ignored)
train_dataloader = dict(batch_size=1, num_workers=0, persistent_workers=False,
                        dataset=dict(**sample))
val_dataloader = dict(num_workers=0, persistent_workers=False, dataset=dict(**sample))
test_dataloader = val_dataloader

train_cfg = dict(max_epochs=1, val_interval=1)
default_hooks = dict(logger=dict(type='LoggerHook', interval=1),
                     checkpoint=dict(interval=1, max_keep_ckpts=1))
randomness = dict(seed=0, deterministic=False)
