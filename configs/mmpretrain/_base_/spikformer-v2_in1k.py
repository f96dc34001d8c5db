# Spikformer V2, ImageNet-1k from scratch at 224x224, T=4, LIF neurons (paper only, no released
# code or recipe): a DeiT/Swin-style AdamW recipe, 300 epochs, 20 warm-up epochs, lr 1e-3 per 1024
# images, weight decay 0.05, mixup 0.8 / cutmix 1.0, label smoothing 0.1, drop path 0.1.
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',
    'mmpretrain::_base_/schedules/imagenet_bs1024_adamw_swin.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmspike.models'], allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='mmspike.SpikformerV2',
        arch='8-512',
        T=4,
        neuron=dict(type='LIF', tau=2.0, v_threshold=1.0),
        attn_neuron=dict(type='LIF', tau=2.0, v_threshold=0.5),
        drop_path_rate=0.1),
    # Spikformer's classifier reads the time-averaged pooled features (no neuron).
    neck=dict(type='mmspike.SpikeGlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=512,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        init_cfg=dict(type='TruncNormal', layer='Linear', std=0.02, bias=0.0)),
    train_cfg=dict(augments=[dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)]),
)

train_dataloader = dict(batch_size=128)
val_dataloader = dict(batch_size=128)
test_dataloader = val_dataloader
