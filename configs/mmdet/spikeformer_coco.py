# The flagship spiking detector: Mask R-CNN with an E-SpikeFormer 19M backbone (integer MultiSpike
# neurons, D=4, T=1: "1x4") and a spiking FPN, trained with the paper's 12-epoch AdamW recipe
# (lr 2e-4, weight decay 0.05, multi-scale crop) on stock mmdet 3.x machinery.
#
#   python tools/train.py configs/mmdet/spikeformer_coco.py
#   python tools/test.py configs/mmdet/spikeformer_coco.py work_dirs/spikeformer_coco/epoch_12.pth
#
# Data: COCO 2017 under data/coco/ (mmdet's layout; missing data is an error naming the file, see
# _base_/datasets/coco_instance.py); configs/mmdet/spikeformer_coco_sample.py is the CPU demo.
#
# Time: the backbone returns [T, B, C, H, W] features; SpikeFPN spikes them, builds the pyramid on
# every time step and averages over T, so mmdet's RPN and RoI heads work unchanged.
#
# Model: mmdet's Mask R-CNN with the backbone, neck and real strides (4/8/16/16, FPN 4/8/16/16/32)
# of _base_/models/spikeformer-19m_fpn.py.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    './_base_/models/spikeformer-19m_fpn.py',
    './_base_/datasets/coco_instance.py',
    './_base_/schedules/adamw_1x.py',
    './_base_/default_runtime.py',
]

model = _base_.pop('spikeformer_19m_fpn')
