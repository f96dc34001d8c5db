# E-SpikeFormer-5M (base family), ImageNet-1k, T=1, D=4 ("1x4"), 224x224.
_base_ = ['./_base_/e-spikeformer_base-family_in1k.py']

model = dict(backbone=dict(arch='5m'), head=dict(in_channels=192))
