# UPerNet on a spiking E-SpikeFormer 19M backbone (T=1, MultiSpike D=4; the hybrid model of
# _base_/models/upernet_e-spikeformer.py), ADE20K 512x512, the same 160k-iteration AdamW recipe as
# the spiking Semantic FPN.
#
#   python tools/train.py configs/mmseg/upernet_e-spikeformer-19m_4xb4-160k_ade20k-512x512.py
#   python tools/test.py configs/mmseg/upernet_e-spikeformer-19m_4xb4-160k_ade20k-512x512.py \
#       work_dirs/upernet_e-spikeformer-19m_4xb4-160k_ade20k-512x512/iter_160000.pth
_base_ = ['./_base_/models/upernet_e-spikeformer.py', './_base_/ade20k_4xb4-160k.py']

crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(data_preprocessor=data_preprocessor)
