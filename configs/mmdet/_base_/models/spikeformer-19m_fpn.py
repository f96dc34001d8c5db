# The spiking part of the E-SpikeFormer two-stage detectors (spikeformer_coco.py,
# cascade-mask-rcnn_spikeformer-19m_coco.py): an E-SpikeFormer 19M backbone (integer MultiSpike
# neurons, D=4, T=1: "1x4") and a spiking FPN, in place of an mmdet two-stage model base's ResNet
# and FPN, with the strides the heads see.
#
# Strides: E-SpikeFormer's stage 4 keeps stride 16, so the backbone outputs strides 4/8/16/16 and
# the FPN (num_outs=5, max-pool extra level) 4/8/16/16/32. The anchor generator and the RoI
# extractors declare those real strides (upstream declared 32 for a stride-16 map); the anchor
# *sizes* stay mmdet's 32..512 through `base_sizes`.
#
# Neurons round half to even (`round_mode='half_even'`), as upstream's detection code fires
# (`torch.round(torch.clamp(u, 0, 4))` in its SDEFormer backbone and SpikeFPN).
#
# Not a model base itself: `spikeformer_19m_fpn` holds overrides of the mmdet model listed before
# this file in `_base_`; a config applies them with `model = _base_.pop('spikeformer_19m_fpn')`
# (popping keeps the variable out of the final config).
spikeformer_19m_fpn = dict(
    backbone=dict(
        _delete_=True,
        type='mmspike.ESpikeFormer',
        arch='19m',
        T=1,
        neuron=dict(type='MultiSpike', max_spikes=4, round_mode='half_even'),
        out_indices=(0, 1, 2, 3),
        # ImageNet weights: not init_cfg=dict(type='Pretrained') (it loads with strict=False and
        # only logs a renamed or reshaped key), but mmspike's exact-key hook in the config:
        #   custom_hooks = [dict(type='mmspike.PretrainedBackboneHook', checkpoint='...pth',
        #                        prefix='backbone.')]  # prefix for a whole-classifier checkpoint
        init_cfg=None),
    neck=dict(
        _delete_=True,
        type='mmspike.SpikeFPN',
        in_channels=[64, 128, 256, 360],
        in_strides=[4, 8, 16, 16],
        out_channels=256,
        num_outs=5,
        neuron=dict(type='MultiSpike', max_spikes=4, norm=1.0, round_mode='half_even')),
    rpn_head=dict(
        anchor_generator=dict(strides=[4, 8, 16, 16, 32], base_sizes=[4, 8, 16, 32, 64])),
    roi_head=dict(
        bbox_roi_extractor=dict(featmap_strides=[4, 8, 16, 16]),
        mask_roi_extractor=dict(featmap_strides=[4, 8, 16, 16])))
