# Meta-SpikeFormer-55M (Spike-Driven Transformer V2), ImageNet-1k, T=1, LIF neurons, 224x224.
_base_ = ['./_base_/meta-spikeformer_in1k.py']

model = dict(backbone=dict(arch='55m'), head=dict(in_channels=640))
