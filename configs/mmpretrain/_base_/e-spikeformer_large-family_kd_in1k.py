# Hard distillation stage of the E-SpikeFormer large family (upstream Model_Large distillation
# command): starts from the fine-tuned model (`load_from`), teacher CAFormer-B36 (ImageNet-21k
# pre-trained, 1k fine-tuned), 8 GPUs x 196, 100 epochs, 5 warm-up epochs, base lr 1e-3 per 256
# images, no layer-wise decay, drop path 0.1, mixup 0.5 / cutmix 1.0; loss
# 0.5 * CE(main head, labels) + 0.5 * CE(distillation head, teacher arg-max).
# The teacher needs timm (`pip install timm`); TimmClassifier downloads its weights, or set
# `teacher_checkpoint` to a local weights file.
_base_ = ['./e-spikeformer_large-family_in1k.py']

model = dict(
    type='mmspike.DistillImageClassifier',
    teacher=dict(
        type='TimmClassifier', model_name='caformer_b36.sail_in22k_ft_in1k', pretrained=True),
    teacher_checkpoint=None,
    train_cfg=dict(augments=[dict(type='Mixup', alpha=0.5), dict(type='CutMix', alpha=1.0)]),
)

train_dataloader = dict(batch_size=196)
optim_wrapper = dict(
    optimizer=dict(lr=1e-3 * 1568 / 256),
    paramwise_cfg=dict(layer_decay_rate=1.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, end=5, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=5),
]
train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=1)
auto_scale_lr = dict(base_batch_size=1568)
load_from = None  # the fine-tuned checkpoint
