from .spike_yolo_head import SpikeYOLOHead

__all__ = ['SpikeYOLOHead']
