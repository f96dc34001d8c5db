from .base_backbone import BaseSpikeBackbone
from .e_spikeformer import ESpikeFormer
from .meta_spikeformer import MetaSpikeFormer
from .spike_yolo import SpikeYOLOBackbone
from .spikformer_v2 import SpikformerV2
from .spiking_convnet import SpikingConvNet

__all__ = ['BaseSpikeBackbone', 'ESpikeFormer', 'MetaSpikeFormer', 'SpikeYOLOBackbone',
           'SpikformerV2', 'SpikingConvNet']
