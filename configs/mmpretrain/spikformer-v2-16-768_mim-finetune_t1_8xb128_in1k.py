# Fine-tune the masked-image-modelling pre-trained 172M Spikformer V2 (16-768, T=1) on ImageNet-1k:
# the setting of the paper's 81.10% (its figure; this config has not been trained here). No recipe
# was released; this is MAE's ViT-B fine-tuning recipe (He et al. 2022): 100 epochs, 5 warm-up
# epochs, AdamW with base lr 5e-4 per 256 images, weight decay 0.05, layer-wise lr decay 0.65,
# drop path 0.1, mixup 0.8 / cutmix 1.0, RandAugment, random erasing 0.25, label smoothing 0.1.
# The encoder weights come from the pre-training checkpoint (spikformer-v2-16-768_mim-pretrain_*),
# converted with tools/model_converters/spike_mae2backbone.py, and are loaded by
# mmspike.PretrainedBackboneHook with exact keys: a missing or unexpected key stops the run with
# the list of them.
_base_ = ['./_base_/spikformer-v2_in1k.py']
custom_imports = dict(imports=['mmspike.classification', 'mmspike.engine'],
                      allow_failed_imports=False)

pretrained_backbone = 'work_dirs/spikformer-v2-16-768_mim-pretrain_t1_8xb256_in1k/backbone.pth'

model = dict(backbone=dict(arch='16-768', T=1, drop_path_rate=0.1), head=dict(in_channels=768))

optim_wrapper = dict(
    constructor='LearningRateDecayOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=5e-4 * 1024 / 256, weight_decay=0.05, betas=(0.9, 0.999)),
    paramwise_cfg=dict(
        _delete_=True,
        layer_decay_rate=0.65,
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        flat_decay_mult=0.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, end=5, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=5,
         convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=1)

custom_hooks = [dict(type='mmspike.PretrainedBackboneHook', checkpoint=pretrained_backbone)]
