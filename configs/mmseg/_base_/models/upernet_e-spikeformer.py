# UPerNet on a spiking E-SpikeFormer backbone (19M, T=1, MultiSpike D=4). No upstream code has a
# UPerNet; this one is a hybrid: mmspike.TimeReduce (mean over T) ends the spiking part and mmseg's
# stock UPerHead (PPM + FPN, ReLU) and FCN auxiliary head decode the ordinary [B, C, H, W] maps.
# The backbone strides are 4/8/16/16 (stage 4 keeps stride 16), so the PPM runs at stride 16.
norm_cfg = dict(type='SyncBN', requires_grad=True)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='mmspike.ESpikeFormer',
        arch='19m',
        T=1,
        neuron=dict(type='MultiSpike', max_spikes=4, round_mode='half_even'),
        out_indices=(0, 1, 2, 3),
        init_cfg=None),
    neck=dict(type='mmspike.TimeReduce'),
    decode_head=dict(
        type='UPerHead',
        in_channels=[64, 128, 256, 360],
        in_index=[0, 1, 2, 3],
        pool_scales=(1, 2, 3, 6),
        channels=512,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=dict(
        type='FCNHead',
        in_channels=256,
        in_index=2,
        channels=256,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
