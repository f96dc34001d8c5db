# Self-supervised pre-training of the 172M Spikformer V2 (16 encoder blocks, width 768, T=1) on
# ImageNet-1k by masked image modelling (mmspike.SpikformerV2MIM): the Spiking Convolutional Stem
# runs as Spike Sparse Convolution, only the visible tokens go through the spiking encoder, and a
# non-spiking MAE decoder reconstructs the normalised pixels of the masked 16x16 patches.
# The paper ("masking and reconstruction style inspired by the mainstream self-supervised
# Transformer", then fine-tuning: 81.10% at T=1) gives no recipe and no code was released; this is
# MAE's recipe (He et al. 2022): 75% masking, a 512-wide 8-block decoder, AdamW (betas 0.9/0.95,
# weight decay 0.05) with base lr 1.5e-4 per 256 images, 40 warm-up epochs then cosine, here over
# 800 epochs. Fine-tune with spikformer-v2-16-768_mim-finetune_t1_8xb128_in1k.py after
#   python tools/model_converters/spike_mae2backbone.py \
#       work_dirs/spikformer-v2-16-768_mim-pretrain_t1_8xb256_in1k/epoch_800.pth \
#       work_dirs/spikformer-v2-16-768_mim-pretrain_t1_8xb256_in1k/backbone.pth \
#       --config configs/mmpretrain/spikformer-v2-16-768_mim-finetune_t1_8xb128_in1k.py
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs512_mae.py',
    'mmpretrain::_base_/default_runtime.py',
]
# (spikformer_v2_mim is named explicitly until mmspike.classification.selfsup imports it.)
custom_imports = dict(
    imports=['mmspike.classification', 'mmspike.classification.selfsup.spikformer_v2_mim'],
    allow_failed_imports=False)

model = dict(
    type='mmspike.SpikformerV2MIM',
    mask_ratio=0.75,
    patch_size=16,
    ssc_backend='dense',  # or 'spconv' (same result, computes active sites only)
    backbone=dict(
        type='mmspike.SpikformerV2',
        arch='16-768',
        T=1,
        neuron=dict(type='LIF', tau=2.0, v_threshold=1.0),
        attn_neuron=dict(type='LIF', tau=2.0, v_threshold=0.5)),
    neck=dict(
        type='MAEPretrainDecoder',
        num_patches=196,  # (224 / 16) ** 2
        patch_size=16,
        in_chans=3,
        embed_dim=768,  # the encoder width
        decoder_embed_dim=512,
        decoder_depth=8,
        decoder_num_heads=16,
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
    optimizer=dict(type='AdamW', lr=1.5e-4 * 2048 / 256, betas=(0.9, 0.95), weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0, flat_decay_mult=0.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=40,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=760, eta_min=0.0, by_epoch=True, begin=40, end=800,
         convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=800)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=100),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3))
randomness = dict(seed=0, diff_rank_seed=True)
resume = True
auto_scale_lr = dict(base_batch_size=2048)
