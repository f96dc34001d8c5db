# Meta-SpikeFormer-15M (Spike-Driven Transformer V2), ImageNet-1k, T=1, LIF neurons, 224x224.
_base_ = ['./_base_/meta-spikeformer_in1k.py']

model = dict(backbone=dict(arch='15m'), head=dict(in_channels=360))
