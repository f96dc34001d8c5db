# Spikformer V2-4-384 on CIFAR-100, T=4: the CIFAR-10 recipe of _base_/spikformer-v2_cifar.py (the
# released Spikformer code has a CIFAR-10 recipe only) with CIFAR-100's mean / std.
_base_ = ['./_base_/spikformer-v2_cifar.py']

mean = [129.304, 124.070, 112.434]  # 0.5071, 0.4865, 0.4409 (x 255)
std = [68.170, 65.392, 70.418]  # 0.2673, 0.2564, 0.2762 (x 255)
data_preprocessor = dict(num_classes=100, mean=mean, std=std)
model = dict(head=dict(num_classes=100))

train_pipeline = [
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(
        type='RandAugment',
        policies='timm_increasing',
        num_policies=1,
        total_level=10,
        magnitude_level=9,
        magnitude_std=0.4,
        hparams=dict(pad_val=[round(x) for x in mean], interpolation='bicubic')),
    dict(
        type='RandomErasing',
        erase_prob=0.25,
        mode='const',
        min_area_ratio=0.02,
        max_area_ratio=1 / 3,
        fill_color=mean),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    dataset=dict(type='CIFAR100', data_root='data/cifar100', pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(type='CIFAR100', data_root='data/cifar100'))
test_dataloader = val_dataloader
