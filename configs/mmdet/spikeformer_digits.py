# The README main job: the flagship spiking detector design (stock mmdet Mask R-CNN, E-SpikeFormer
# backbone with integer MultiSpike neurons D=4, T=1, spiking SpikeFPN neck) learns the digit
# canvases on a CPU and is scored on held-out handwriting with mmdet's COCO bbox / segm mAP.
#
#   python tools/train.py configs/mmdet/spikeformer_digits.py
#   python tools/test.py configs/mmdet/spikeformer_digits.py \
#       work_dirs/spikeformer_digits/epoch_12.pth
#
# Sized for two CPU cores (what differs from spikeformer_coco.py, whose 19M model and 256-wide
# heads are the COCO design): the 2M backbone (channels 24/48/96/128, strides 4/8/16/16), 64x64
# inputs, a 64-channel FPN / RPN / RoI heads with a 256-wide box head, 10 classes, fewer proposals
# and sampled RoIs (64 per image), anchors of 16..256 px (scale 4 instead of 8: the digits are
# 16-32 px), and AdamW at lr 1e-3 for 12 epochs of 83 iterations (batch 8), cosine decay.
# Held-out bbox mAP@0.5 by schedule (2 idle cores, default threads): 6 epochs 0.48-0.58,
# 8 epochs 0.672 (11.5 min), 12 epochs 0.886 (19 min).
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    './_base_/models/spikeformer-19m_fpn.py',
    './_base_/datasets/digit_canvas_instance.py',
    './_base_/schedules/digit_canvas_6e.py',
    './_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmspike.detection'], allow_failed_imports=False)

width = 64
num_classes = 10
model = _base_.pop('spikeformer_19m_fpn')
model['backbone']['arch'] = '2m'
model['neck'].update(in_channels=[24, 48, 96, 128], out_channels=width)
model['rpn_head'].update(in_channels=width, feat_channels=width)
model['rpn_head']['anchor_generator']['scales'] = [4]
model['roi_head']['bbox_roi_extractor']['out_channels'] = width
model['roi_head']['mask_roi_extractor']['out_channels'] = width
model['roi_head'].update(
    bbox_head=dict(in_channels=width, fc_out_channels=256, num_classes=num_classes),
    mask_head=dict(in_channels=width, conv_out_channels=width, num_classes=num_classes))
model.update(
    data_preprocessor=dict(mean=[127.5] * 3, std=[127.5] * 3, bgr_to_rgb=False),
    train_cfg=dict(rpn_proposal=dict(nms_pre=600, max_per_img=150),
                   rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(rpn=dict(nms_pre=300, max_per_img=100), rcnn=dict(max_per_img=20)))

max_epochs = 12
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=1e-5, by_epoch=True, begin=0,
         end=max_epochs),
]
default_hooks = dict(logger=dict(interval=20), checkpoint=dict(interval=max_epochs))
randomness = dict(seed=0)
