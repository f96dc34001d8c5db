# The flagship spiking detector: Mask R-CNN with an E-SpikeFormer 19M backbone (integer MultiSpike
# neurons, D=4, T=1: "1x4") and a spiking FPN, trained with the paper's 12-epoch AdamW recipe
# (lr 2e-4, weight decay 0.05, multi-scale crop) on stock mmdet 3.x machinery.
#
#   python tools/train.py configs/mmdet/spikeformer_coco.py
#   python tools/test.py configs/mmdet/spikeformer_coco.py work_dirs/spikeformer_coco/epoch_12.pth
#
# Data: COCO 2017 under data/coco/ (mmdet's layout), or the bundled 4-image sample when it is absent
# (see _base_/datasets/coco_instance.py); configs/mmdet/spikeformer_coco_sample.py is the CPU demo.
#
# Time: the backbone returns [T, B, C, H, W] features; SpikeFPN spikes them, builds the pyramid on
# every time step and averages over T, so mmdet's RPN and RoI heads work unchanged.
#
# Strides: E-SpikeFormer's stage 4 keeps stride 16, so the backbone outputs strides 4/8/16/16 and
# the FPN (num_outs=5, max-pool extra level) 4/8/16/16/32. The anchor generator and the RoI
# extractors declare those real strides (upstream declared 32 for a stride-16 map); the anchor
# *sizes* stay mmdet's 32..512 through `base_sizes`.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
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
        # ImageNet weights: init_cfg=dict(type='Pretrained', checkpoint='...', prefix='backbone.')
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
