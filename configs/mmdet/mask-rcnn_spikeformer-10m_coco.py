# Mask R-CNN with E-SpikeFormer 10M (upstream's "sdeformer-s" detector): the flagship recipe with
# the smaller backbone (channels 48/96/192/240, same strides 4/8/16/16).
_base_ = './spikeformer_coco.py'

model = dict(
    backbone=dict(arch='10m'),
    neck=dict(in_channels=[48, 96, 192, 240]))
