from .time_reduce import SpikeGlobalAveragePooling, TimeReduce

__all__ = ['TimeReduce', 'SpikeGlobalAveragePooling']
