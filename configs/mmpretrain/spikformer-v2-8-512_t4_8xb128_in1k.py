# Spikformer V2-8-512 (8 encoder blocks, width 512), ImageNet-1k, T=4, LIF neurons, 224x224.
_base_ = ['./_base_/spikformer-v2_in1k.py']

model = dict(backbone=dict(arch='8-512'), head=dict(in_channels=512))
