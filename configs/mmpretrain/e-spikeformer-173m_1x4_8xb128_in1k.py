# E-SpikeFormer-173M (large family), ImageNet-1k fine-tuning, T=1, D=4 ("1x4"), 224x224.
_base_ = ['./_base_/e-spikeformer_large-family_in1k.py']

model = dict(backbone=dict(arch='173m'), head=dict(in_channels=768))
