# SpikeYOLO-n (13.3M parameters): spikeyolo_s_coco.py at depth 0.33, width 0.375.
_base_ = './spikeyolo_s_coco.py'

arch = 'n'
in_channels = [96, 192, 384]
model = dict(
    backbone=dict(arch=arch),
    neck=dict(in_channels=in_channels),
    bbox_head=dict(in_channels=in_channels))
