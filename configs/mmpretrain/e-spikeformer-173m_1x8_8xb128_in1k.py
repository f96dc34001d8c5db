# E-SpikeFormer-173M (large family), ImageNet-1k fine-tuning, T=1, D=8 ("1x8"), 224x224.
_base_ = ['./e-spikeformer-173m_1x4_8xb128_in1k.py']

model = dict(
    backbone=dict(neuron=dict(max_spikes=8)),
    head=dict(kd_neuron=dict(max_spikes=8)))
