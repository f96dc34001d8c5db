# Cascade Mask R-CNN with E-SpikeFormer 19M and SpikeFPN, the flagship's 12-epoch AdamW recipe
# (upstream trained this one for 36 epochs). Same backbone, neck and real strides as the flagship
# (_base_/models/spikeformer-19m_fpn.py): backbone 4/8/16/16, FPN 4/8/16/16/32.
_base_ = [
    'mmdet::_base_/models/cascade-mask-rcnn_r50_fpn.py',
    './_base_/models/spikeformer-19m_fpn.py',
    './_base_/datasets/coco_instance.py',
    './_base_/schedules/adamw_1x.py',
    './_base_/default_runtime.py',
]

model = _base_.pop('spikeformer_19m_fpn')
