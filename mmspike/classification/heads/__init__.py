from .distill_head import SpikeDistillClsHead

__all__ = ['SpikeDistillClsHead']
