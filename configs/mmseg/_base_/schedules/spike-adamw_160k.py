# The E-SpikeFormer segmentation recipe (upstream Spike-Driven-Transformer-V3, Segmentation/configs/
# EFSDTv2): 160k iterations of AdamW, lr 1e-3, weight decay 0.005, betas (0.9, 0.999), the heads
# (every parameter whose name contains 'head': decode_head and auxiliary_head) at 2x lr, a
# 1500-iteration linear warm-up from lr*1e-6, then linear (power 1) decay to 0. mmseg's 160k
# schedule supplies the loops, the 16k-iteration validation / checkpoint interval and the hooks.
# lr 1e-3 is for a total batch of 16 (4 GPUs x 4 images; scale it with the batch size).
_base_ = 'mmseg::_base_/schedules/schedule_160k.py'

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=0.005),
    paramwise_cfg=dict(custom_keys={'head': dict(lr_mult=2.0)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, by_epoch=False, begin=1500, end=160000),
]
