# E-SpikeFormer-83M (large family), hard distillation from CAFormer-B36, T=1, D=8, 224x224.
_base_ = ['./e-spikeformer-83m-kd_1x4_8xb196_in1k.py']

model = dict(
    backbone=dict(neuron=dict(max_spikes=8)),
    head=dict(kd_neuron=dict(max_spikes=8)))
