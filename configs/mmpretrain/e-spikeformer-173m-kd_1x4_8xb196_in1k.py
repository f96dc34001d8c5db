# E-SpikeFormer-173M (large family), hard distillation from CAFormer-B36, T=1, D=4, 224x224.
_base_ = ['./_base_/e-spikeformer_large-family_kd_in1k.py']

model = dict(backbone=dict(arch='173m'), head=dict(in_channels=768))
