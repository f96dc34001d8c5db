# Meta-SpikeFormer (Spike-Driven Transformer V2), ImageNet-1k from scratch at 224x224 with T=1
# and LIF neurons; recipe of the upstream training command: 8 GPUs x 128, 200 epochs, 10 warm-up
# epochs, base lr 6e-4 per 256 images, weight decay 0.05, cosine to 1e-6, label smoothing 0.1,
# RandAugment m9-mstd0.5, random erasing 0.25, no mixup. (Upstream's optimizer is LAMB.)
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',
    'mmpretrain::_base_/schedules/imagenet_bs1024_adamw_swin.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmspike.models'], allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='mmspike.MetaSpikeFormer',
        arch='55m',
        T=1,
        neuron=dict(type='LIF', tau=2.0, v_threshold=1.0),
        attn_neuron=dict(type='LIF', tau=2.0, v_threshold=0.5),
        # Upstream builds DropPath but never applies it.
        drop_path_rate=0.0),
    neck=dict(type='mmspike.SpikeGlobalAveragePooling', neuron=dict(type='LIF', tau=2.0)),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=640,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        init_cfg=dict(type='TruncNormal', layer='Linear', std=0.02, bias=0.0)),
)

train_dataloader = dict(batch_size=128)
val_dataloader = dict(batch_size=128)
test_dataloader = val_dataloader

optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=6e-4 * 1024 / 256, weight_decay=0.05, betas=(0.9, 0.999)))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, end=10, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=10),
]
train_cfg = dict(by_epoch=True, max_epochs=200, val_interval=1)
auto_scale_lr = dict(base_batch_size=1024)
