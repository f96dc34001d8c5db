from .spiking_convnet import SpikingConvNet

__all__ = ['SpikingConvNet']
