# Meta-SpikeFormer (Spike-Driven Transformer V2), ImageNet-1k from scratch at 224x224 with T=1
# and LIF neurons; recipe of the upstream training command: 8 GPUs x 128, 200 epochs, 10 warm-up
# epochs, base lr 6e-4 per 256 images, weight decay 0.05, cosine to 1e-6, label smoothing 0.1,
# RandAugment m9-mstd0.5, random erasing 0.25, no mixup. (Upstream's optimizer is LAMB.)
_base_ = ['./spiking-classifier_in1k.py']

model = dict(
    backbone=dict(
        type='mmspike.MetaSpikeFormer',
        arch='55m',
        T=1,
        neuron=dict(type='LIF', tau=2.0, v_threshold=1.0),
        attn_neuron=dict(type='LIF', tau=2.0, v_threshold=0.5),
        # Upstream builds DropPath but never applies it.
        drop_path_rate=0.0),
    neck=dict(type='mmspike.SpikeGlobalAveragePooling', neuron=dict(type='LIF', tau=2.0)),
    head=dict(in_channels=640),
)

optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=6e-4 * 1024 / 256, weight_decay=0.05, betas=(0.9, 0.999)))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, end=10, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=10),
]
train_cfg = dict(by_epoch=True, max_epochs=200, val_interval=1)
