# Fine-tune a spike-MAE pre-trained E-SpikeFormer-19M on ImageNet-1k (upstream
# Model_Large/main_finetune.py command: 8 GPUs x 128 images, base lr 6e-4 per 256 images, 10
# warm-up epochs, 150 epochs, layer-wise lr decay 0.75, drop path 0.1, mixup 0.8 / cutmix 1.0,
# RandAugment m9-mstd0.5, random erasing 0.25, label smoothing 0.1).
# The encoder weights come from the pre-training checkpoint, converted with
#   python tools/model_converters/spike_mae2backbone.py \
#       work_dirs/spike-mae_e-spikeformer-19m_in1k-pretrain/epoch_200.pth \
#       work_dirs/spike-mae_e-spikeformer-19m_in1k-pretrain/backbone.pth
# and loaded by mmspike.PretrainedBackboneHook with exact keys: a missing or unexpected key stops
# the run with the list of them (no strict=False).
_base_ = ['./e-spikeformer-19m_1x4_8xb128_in1k.py']
custom_imports = dict(imports=['mmspike.classification', 'mmspike.engine'], allow_failed_imports=False)

pretrained_backbone = 'work_dirs/spike-mae_e-spikeformer-19m_in1k-pretrain/backbone.pth'

model = dict(
    backbone=dict(drop_path_rate=0.1),
    train_cfg=dict(augments=[dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)]))

optim_wrapper = dict(
    constructor='LearningRateDecayOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=6e-4 * 1024 / 256, weight_decay=0.05, betas=(0.9, 0.999)),
    paramwise_cfg=dict(
        _delete_=True,
        layer_decay_rate=0.75,
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        flat_decay_mult=0.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, end=10, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=10,
         convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=150, val_interval=1)

custom_hooks = [dict(type='mmspike.PretrainedBackboneHook', checkpoint=pretrained_backbone)]
