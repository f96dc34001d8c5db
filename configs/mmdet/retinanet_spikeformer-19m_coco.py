# RetinaNet with E-SpikeFormer 19M and SpikeFPN (12-epoch AdamW recipe, multi-scale crop).
#
# Strides: the FPN starts at the stride-8 stage and adds two stride-2 spiking convs on its last
# input, so its five outputs are at 8/16/16/32/64 (not mmdet's 8..128); the anchor generator
# declares them and keeps RetinaNet's anchor sizes (32..512) through `base_sizes`.
_base_ = [
    'mmdet::_base_/models/retinanet_r50_fpn.py',
    './_base_/datasets/coco_detection.py',
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
        out_indices=(1, 2, 3),
        init_cfg=None),
    neck=dict(
        _delete_=True,
        type='mmspike.SpikeFPN',
        in_channels=[128, 256, 360],
        in_strides=[8, 16, 16],
        out_channels=256,
        add_extra_convs='on_input',
        num_outs=5),
    bbox_head=dict(
        anchor_generator=dict(strides=[8, 16, 16, 32, 64], base_sizes=[8, 16, 32, 64, 128])))
