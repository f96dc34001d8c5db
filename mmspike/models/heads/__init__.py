from .distill_head import SpikeDistillClsHead
from .spike_seg_heads import SpikeFPNHead
from .spike_yolo_head import SpikeYOLOHead

__all__ = ['SpikeDistillClsHead', 'SpikeFPNHead', 'SpikeYOLOHead']
