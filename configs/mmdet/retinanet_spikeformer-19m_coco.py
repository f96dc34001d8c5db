# RetinaNet with E-SpikeFormer 19M and SpikeFPN (12-epoch AdamW recipe, multi-scale crop).
#
# Strides: the FPN starts at the stride-8 stage and adds two stride-2 spiking convs on its last
# input, so its five outputs are at 8/16/16/32/64 (not mmdet's 8..128); the anchor generator
# declares them and keeps RetinaNet's anchor sizes (32..512) through `base_sizes`.
_base_ = [
    'mmdet::_base_/models/retinanet_r50_fpn.py',
    './_base_/models/spikeformer-19m_fpn.py',
    './_base_/datasets/coco_detection.py',
    './_base_/schedules/adamw_1x.py',
    './_base_/default_runtime.py',
]

# the two-stage detectors' backbone and SpikeFPN, from the stride-8 stage on
_spiking = _base_.pop('spikeformer_19m_fpn')
model = dict(
    backbone=dict(_spiking['backbone'], out_indices=(1, 2, 3)),
    neck=dict(_spiking['neck'], in_channels=[128, 256, 360], in_strides=[8, 16, 16],
              add_extra_convs='on_input'),
    bbox_head=dict(
        anchor_generator=dict(strides=[8, 16, 16, 32, 64], base_sizes=[8, 16, 32, 64, 128])))
del _spiking
