# Meta-SpikeFormer-55M, fine-tuned at T=4 from the T=1 model (`load_from`) with hard distillation
# from CAFormer-B36 (upstream README: 8 GPUs x 24, 50 epochs, 5 warm-up epochs, base lr 2e-5 per
# 256 images; the paper states 20 epochs / 2 warm-up). Needs timm for the teacher.
_base_ = ['./meta-spikeformer-55m_t1_8xb128_in1k.py']

model = dict(
    type='mmspike.DistillImageClassifier',
    teacher=dict(
        type='TimmClassifier', model_name='caformer_b36.sail_in22k_ft_in1k', pretrained=True),
    teacher_checkpoint=None,
    backbone=dict(T=4),
    head=dict(
        _delete_=True,
        type='mmspike.SpikeDistillClsHead',
        num_classes=1000,
        in_channels=640,
        distill_weight=0.5,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original')),
)

train_dataloader = dict(batch_size=24)
optim_wrapper = dict(optimizer=dict(lr=2e-5 * 192 / 256))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, end=5, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=5),
]
train_cfg = dict(by_epoch=True, max_epochs=50, val_interval=1)
auto_scale_lr = dict(base_batch_size=192)
load_from = None  # the T=1 meta-spikeformer-55m checkpoint
# The T=1 checkpoint has no distillation classifier (head.fc_kd) and no teacher: those keys are
# missing by design, so this config opts out of mmspike's strict loading (SpikeRunner logs them).
load_strict = False
