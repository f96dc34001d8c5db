# Backbone swap by inheritance: Meta-SpikeFormer 15M has E-SpikeFormer 19M's channels and strides.
_base_ = './spikeformer_coco.py'
model = dict(
    backbone=dict(_delete_=True, type='mmspike.MetaSpikeFormer', arch='15m',
                  out_indices=(0, 1, 2, 3)))
