# CPU demo of fpn_e-spikeformer-10m_4xb4-160k_ade20k-512x512.py (same model and optimizer): the
# 19M demo (fpn_e-spikeformer-19m_ade20k-sample.py) with the smaller backbone.
#
#   python tools/train.py configs/mmseg/fpn_e-spikeformer-10m_ade20k-sample.py
#   python tools/test.py configs/mmseg/fpn_e-spikeformer-10m_ade20k-sample.py \
#       work_dirs/fpn_e-spikeformer-10m_ade20k-sample/iter_4.pth
_base_ = './fpn_e-spikeformer-19m_ade20k-sample.py'

model = dict(
    backbone=dict(arch='10m'),
    neck=dict(in_channels=[48, 96, 192, 240]))
