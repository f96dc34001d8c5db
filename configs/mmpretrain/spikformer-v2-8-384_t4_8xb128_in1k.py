# Spikformer V2-8-384 (8 encoder blocks, width 384), ImageNet-1k, T=4, LIF neurons, 224x224.
_base_ = ['./_base_/spikformer-v2_in1k.py']

model = dict(backbone=dict(arch='8-384'), head=dict(in_channels=384))
