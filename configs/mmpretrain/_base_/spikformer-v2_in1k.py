# Spikformer V2, ImageNet-1k from scratch at 224x224, T=4, LIF neurons (paper only, no released
# code or recipe): a DeiT/Swin-style AdamW recipe, 300 epochs, 20 warm-up epochs, lr 1e-3 per 1024
# images, weight decay 0.05, mixup 0.8 / cutmix 1.0, label smoothing 0.1, drop path 0.1.
_base_ = ['./spiking-classifier_in1k.py']

model = dict(
    backbone=dict(
        type='mmspike.SpikformerV2',
        arch='8-512',
        T=4,
        neuron=dict(type='LIF', tau=2.0, v_threshold=1.0),
        attn_neuron=dict(type='LIF', tau=2.0, v_threshold=0.5),
        drop_path_rate=0.1),
    # Spikformer's classifier reads the time-averaged pooled features (no neuron).
    neck=dict(type='mmspike.SpikeGlobalAveragePooling'),
    head=dict(in_channels=512),
    train_cfg=dict(augments=[dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)]),
)
