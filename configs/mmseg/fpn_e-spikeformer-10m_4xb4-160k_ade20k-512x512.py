# Spiking Semantic FPN with E-SpikeFormer 10M (channels 48/96/192/240, strides 4/8/16/16): the
# 19M recipe (fpn_e-spikeformer-19m_4xb4-160k_ade20k-512x512.py) with the smaller backbone.
#
#   python tools/train.py configs/mmseg/fpn_e-spikeformer-10m_4xb4-160k_ade20k-512x512.py
#   python tools/test.py configs/mmseg/fpn_e-spikeformer-10m_4xb4-160k_ade20k-512x512.py \
#       work_dirs/fpn_e-spikeformer-10m_4xb4-160k_ade20k-512x512/iter_160000.pth
_base_ = './fpn_e-spikeformer-19m_4xb4-160k_ade20k-512x512.py'

model = dict(
    backbone=dict(arch='10m'),
    neck=dict(in_channels=[48, 96, 192, 240]))
