from .data_preprocessor import PointsDataPreprocessor, sparse_batch
from .e3dsnn import E3DSNN, SparseGlobalAveragePooling, convert_upstream_e3dsnn

__all__ = ['E3DSNN', 'SparseGlobalAveragePooling', 'convert_upstream_e3dsnn',
           'PointsDataPreprocessor', 'sparse_batch']
