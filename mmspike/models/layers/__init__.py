from .conv import SpikeConvBN
from .time import TimeDistributed, fold_time, reduce_time, to_time_sequence, unfold_time

__all__ = ['SpikeConvBN', 'TimeDistributed', 'fold_time', 'unfold_time', 'reduce_time',
           'to_time_sequence']
