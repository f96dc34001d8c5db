# Spikformer V2-4-384 on CIFAR-10, T=4 (recipe and its sources: _base_/spikformer-v2_cifar.py).
_base_ = ['./_base_/spikformer-v2_cifar.py']
