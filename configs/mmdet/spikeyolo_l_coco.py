# SpikeYOLO-l (68.5M parameters, upstream's "69M"): spikeyolo_s_coco.py at depth 0.5, width 0.75,
# with the P5 block's MLP ratio 2.
_base_ = './spikeyolo_s_coco.py'

arch = 'l'
in_channels = [192, 384, 768]
model = dict(
    backbone=dict(arch=arch),
    neck=dict(in_channels=in_channels, out5_mlp_ratio=2),
    bbox_head=dict(in_channels=in_channels))
