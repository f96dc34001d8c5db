# Spike-masked autoencoder pre-training of E-SpikeFormer-19M on ImageNet-1k, the paper's recipe:
# 200 epochs, 50% of the 16x16 patches masked, 8 GPUs x 256 images, AdamW (betas 0.9/0.95, eps 1e-4,
# weight decay 0.05 on every parameter) with base lr 1.5e-4 per 256 images, 20 warm-up epochs then
# cosine to 0 (upstream Model_Large/main_pretrain.py). The encoder's CNN stages run as Spike Sparse
# Convolution (masked patches stay zero); the decoder is a non-spiking 4-block ViT of width 256.
# Fine-tune the result with spike-mae_e-spikeformer-19m_in1k-finetune.py.
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs512_mae.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmspike.classification', 'mmspike.engine'], allow_failed_imports=False)

model = dict(
    type='mmspike.SpikeMAE',
    mask_ratio=0.5,
    patch_size=16,
    ssc_backend='dense',  # or 'spconv' (same result, computes active sites only)
    backbone=dict(
        type='mmspike.ESpikeFormer',
        arch='19m',
        T=1,
        neuron=dict(type='MultiSpike', max_spikes=4),
        out_indices=(-1, )),
    neck=dict(
        type='MAEPretrainDecoder',
        num_patches=196,  # (224 / 16) ** 2
        patch_size=16,
        in_chans=3,
        embed_dim=360,  # channels of the encoder's last stage
        decoder_embed_dim=256,
        decoder_depth=4,
        decoder_num_heads=4,
        mlp_ratio=4),
    head=dict(
        type='MAEPretrainHead',
        norm_pix=True,
        patch_size=16,
        loss=dict(type='PixelReconstructionLoss', criterion='L2')))

# 8 GPUs x 256 images = 2048. (The collate_fn is redefined because MMEngine tags the dicts of an
# ``mmpretrain::`` base with ``_scope_``, which a plain function like default_collate rejects.)
train_dataloader = dict(
    batch_size=256, num_workers=8, collate_fn=dict(_delete_=True, type='default_collate'))

optim_wrapper = dict(
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(
        type='AdamW', lr=1.5e-4 * 2048 / 256, betas=(0.9, 0.95), eps=1e-4, weight_decay=0.05))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=20,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=180, eta_min=0.0, by_epoch=True, begin=20, end=200,
         convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=200)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=100),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3))
randomness = dict(seed=0, diff_rank_seed=True)
resume = True
auto_scale_lr = dict(base_batch_size=2048)
