# Cascade Mask R-CNN with E-SpikeFormer 19M and SpikeFPN, the flagship's 12-epoch AdamW recipe
# (upstream trained this one for 36 epochs). Same real strides as the flagship: backbone 4/8/16/16,
# FPN 4/8/16/16/32.
_base_ = [
    'mmdet::_base_/models/cascade-mask-rcnn_r50_fpn.py',
    './_base_/datasets/coco_instance.py',
    './_base_/schedules/adamw_1x.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmspike.models'], allow_failed_imports=False)
default_scope = 'mmdet'

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmspike.ESpikeFormer',
        arch='19m',
        T=1,
        neuron=dict(type='MultiSpike', max_spikes=4),
        out_indices=(0, 1, 2, 3),
        init_cfg=None),
    neck=dict(
        _delete_=True,
        type='mmspike.SpikeFPN',
        in_channels=[64, 128, 256, 360],
        in_strides=[4, 8, 16, 16],
        out_channels=256,
        num_outs=5),
    rpn_head=dict(
        anchor_generator=dict(strides=[4, 8, 16, 16, 32], base_sizes=[4, 8, 16, 32, 64])),
    roi_head=dict(
        bbox_roi_extractor=dict(featmap_strides=[4, 8, 16, 16]),
        mask_roi_extractor=dict(featmap_strides=[4, 8, 16, 16])))
