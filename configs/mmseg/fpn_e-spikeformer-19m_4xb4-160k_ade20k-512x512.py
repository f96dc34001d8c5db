# Spiking Semantic FPN with E-SpikeFormer 19M ("1x4": T=1, MultiSpike D=4) on ADE20K, 512x512
# crops, the paper's 160k-iteration AdamW recipe (lr 1e-3, batch 16 = 4 GPUs x 4), stock mmseg 1.2
# data pipeline, ADE20KDataset and IoUMetric.
#
#   python tools/train.py configs/mmseg/fpn_e-spikeformer-19m_4xb4-160k_ade20k-512x512.py
#   bash tools/dist_train.sh configs/mmseg/fpn_e-spikeformer-19m_4xb4-160k_ade20k-512x512.py 4
#   python tools/test.py configs/mmseg/fpn_e-spikeformer-19m_4xb4-160k_ade20k-512x512.py \
#       work_dirs/fpn_e-spikeformer-19m_4xb4-160k_ade20k-512x512/iter_160000.pth
#
# Data: ADEChallengeData2016 under data/ade/ (mmseg's layout). Sliding-window testing:
#   --cfg-options model.test_cfg.mode=slide model.test_cfg.crop_size="(512,512)" \
#       model.test_cfg.stride="(341,341)"
# ImageNet-pretrained backbone (an mmspike/mmpretrain E-SpikeFormer 19M checkpoint), loaded by
# exact key:
#   custom_hooks = [dict(type='mmspike.PretrainedBackboneHook', checkpoint='...pth',
#                        prefix='backbone.')]
_base_ = ['./_base_/models/fpn_e-spikeformer.py', './_base_/ade20k_4xb4-160k.py']

crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(data_preprocessor=data_preprocessor)
