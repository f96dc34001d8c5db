# E-SpikeFormer-5M (base family), ImageNet-1k, T=1, D=8 ("1x8"): neurons fire up to 8 spikes.
_base_ = ['./e-spikeformer-5m_1x4_8xb128_in1k.py']

model = dict(
    backbone=dict(neuron=dict(max_spikes=8)),
    neck=dict(neuron=dict(max_spikes=8)))
