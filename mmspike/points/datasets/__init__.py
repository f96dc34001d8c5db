from .modelnet40 import (MODELNET40_CLASSES, ModelNet40Dataset, farthest_point_sample,
                         read_resampled_txt)

__all__ = ['ModelNet40Dataset', 'MODELNET40_CLASSES', 'read_resampled_txt',
           'farthest_point_sample']
