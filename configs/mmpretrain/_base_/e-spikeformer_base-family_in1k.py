# E-SpikeFormer base family (2M-19M), ImageNet-1k from scratch at 224x224, "1x4": T=1 time step,
# integer MultiSpike neurons firing up to D=4 spikes. Recipe of the upstream Model_Base training
# command: 8 GPUs, 200 epochs, 5 warm-up epochs, base lr 6e-4 per 256 images, weight decay 0.05,
# cosine to 1e-6, label smoothing 0.1, RandAugment m9-mstd0.5, random erasing 0.25, no mixup.
# Upstream's optimizer is LAMB; the paper's recipe (used here) is AdamW (see the README).
_base_ = ['./spiking-classifier_in1k.py']

# Neurons round half to even (`round_mode='half_even'`): upstream's base family fires
# torch.round(clamp(u, 0, D)), so converted upstream weights reproduce upstream's outputs exactly.
model = dict(
    backbone=dict(
        type='mmspike.ESpikeFormer',
        arch='10m',
        T=1,
        neuron=dict(type='MultiSpike', max_spikes=4, round_mode='half_even'),
        # Upstream builds DropPath for the base family but never applies it.
        drop_path_rate=0.0),
    # GAP -> MultiSpike with norm 1 (raw integer spikes) -> mean over T.
    neck=dict(
        type='mmspike.SpikeGlobalAveragePooling',
        neuron=dict(type='MultiSpike', max_spikes=4, norm=1, round_mode='half_even')),
    head=dict(in_channels=240),
)

optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=6e-4 * 1024 / 256, weight_decay=0.05, betas=(0.9, 0.999)))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, end=5, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=5),
]
train_cfg = dict(by_epoch=True, max_epochs=200, val_interval=1)
