# Spiking Semantic FPN (the E-SpikeFormer segmenter): E-SpikeFormer -> SpikeFPN -> SpikeFPNHead,
# integer MultiSpike neurons (D=4, outputs divided by D as upstream) in front of every conv after
# the stem; T=1 ("1x4"). The backbone's [T, B, C, H, W] features stay spiking through the neck
# (SpikeFPN(time_reduction=None)); SpikeFPNHead averages its spikes over T right before the 1x1
# classifier, so mmseg's EncoderDecoder, losses and IoUMetric see ordinary [B, 150, H, W] logits.
#
# Strides: E-SpikeFormer's stages end at strides 4/8/16/16 (stage 4 keeps stride 16); the neck and
# head declare those real strides. (Upstream fed the stride-2 stem, 4, 8 and 16 maps into a head
# that declared 4/8/16/32.) The neck/head width is upstream's 128.
norm_cfg = dict(type='SyncBN', requires_grad=True)
neuron = dict(type='MultiSpike', max_spikes=4, round_mode='half_even')  # torch.round, as upstream
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
        neuron=neuron,
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.0,
        init_cfg=None),
    neck=dict(
        type='mmspike.SpikeFPN',
        in_channels=[64, 128, 256, 360],
        in_strides=[4, 8, 16, 16],
        out_channels=128,
        num_outs=4,
        neuron=neuron,
        norm_cfg=norm_cfg,
        time_reduction=None),
    decode_head=dict(
        type='mmspike.SpikeFPNHead',
        in_channels=[128, 128, 128, 128],
        in_index=[0, 1, 2, 3],
        feature_strides=[4, 8, 16, 16],
        channels=128,
        neuron=neuron,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
