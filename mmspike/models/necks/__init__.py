from .time_reduce import SpikeGlobalAveragePooling, TimeReduce
from .spike_fpn import SpikeFPN
from .spike_yolo_pan import SpikeYOLOPAN

__all__ = ['TimeReduce', 'SpikeGlobalAveragePooling', 'SpikeFPN', 'SpikeYOLOPAN']
