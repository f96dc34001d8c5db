# SpikeYOLO-m (47.8M parameters): spikeyolo_s_coco.py at depth 0.5, width 0.625, with the P5 block's
# MLP ratio 2 (upstream's note for m/l, which gives its 48M).
_base_ = './spikeyolo_s_coco.py'

arch = 'm'
in_channels = [160, 320, 640]
model = dict(
    backbone=dict(arch=arch),
    neck=dict(in_channels=in_channels, out5_mlp_ratio=2),
    bbox_head=dict(in_channels=in_channels))
