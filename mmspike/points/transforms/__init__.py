from .point_transforms import (NormalizePoints, PackPointsInputs, RandomScalePoints,
                               RandomShiftPoints, SpikeVoxelCoding)

__all__ = ['NormalizePoints', 'RandomScalePoints', 'RandomShiftPoints', 'SpikeVoxelCoding',
           'PackPointsInputs']
