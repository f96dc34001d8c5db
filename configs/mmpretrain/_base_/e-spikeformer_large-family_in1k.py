# E-SpikeFormer large family (83M, 173M), ImageNet-1k fine-tuning at 224x224, "1x4".
# The upstream models are pre-trained as spike-masked autoencoders (Spike Sparse Convolution),
# then fine-tuned with this recipe (upstream Model_Large fine-tuning command): 8 GPUs x 128,
# 150 epochs, 10 warm-up epochs, base lr 6e-4 per 256 images, layer-wise lr decay 0.75, drop path
# 0.1, weight decay 0.05, label smoothing 0.1, mixup 0.8 / cutmix 1.0, random erasing 0.25,
# model EMA 0.99996. Point `load_from` (or the backbone's init_cfg) at the pre-trained encoder.
# The model has the main and the distillation classifier (both learn the labels here; see the
# -kd configs for the teacher).
_base_ = ['./spiking-classifier_in1k.py']

# As upstream: the main classifier reads the real-valued pooled features, only the distillation
# classifier reads their spikes (`kd_neuron`), and the eval output is the mean of the two. The
# all-spiking option (both classifiers fed by spikes): `neck=dict(neuron=dict(type='MultiSpike',
# max_spikes=4, norm=1, round_mode='floor_plus_half', grad_window='open'))` with
# `head=dict(kd_neuron=None)` (a different function from the released weights').
# Neurons fire floor(clamp(u, 0, D) + 0.5) with the addition rounded in the working dtype
# (`round_mode='floor_plus_half'`), as upstream's large-family code computes it.
large_neuron = dict(
    type='MultiSpike', max_spikes=4, round_mode='floor_plus_half',
    # The large-family neuron passes gradients on the open window 0 < u < D.
    grad_window='open')
model = dict(
    backbone=dict(
        type='mmspike.ESpikeFormer',
        arch='83m',
        T=1,
        neuron=large_neuron,
        drop_path_rate=0.1),
    neck=dict(type='mmspike.SpikeGlobalAveragePooling', neuron=None),
    # the main and the distillation classifier, in place of the shared linear head
    head=dict(
        _delete_=True,
        type='mmspike.SpikeDistillClsHead',
        num_classes=1000,
        in_channels=512,
        distill_weight=0.5,
        kd_neuron=dict(large_neuron, norm=1),
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original')),
    train_cfg=dict(augments=[dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)]),
)

optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=6e-4 * 1024 / 256, weight_decay=0.05, betas=(0.9, 0.999)),
    constructor='LearningRateDecayOptimWrapperConstructor',
    paramwise_cfg=dict(
        layer_decay_rate=0.75, norm_decay_mult=0.0, bias_decay_mult=0.0, flat_decay_mult=0.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, end=10, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=10),
]
train_cfg = dict(by_epoch=True, max_epochs=150, val_interval=1)
custom_hooks = [dict(type='EMAHook', momentum=4e-5, priority='ABOVE_NORMAL')]
load_from = None  # the spike-masked-autoencoder pre-trained weights
