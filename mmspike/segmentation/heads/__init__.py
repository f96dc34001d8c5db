from .spike_seg_heads import SpikeFPNHead

__all__ = ['SpikeFPNHead']
