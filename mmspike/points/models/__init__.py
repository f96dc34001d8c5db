from .data_preprocessor import PointsDataPreprocessor, sparse_batch
from .e3dsnn import E3DSNN, SparseGlobalAveragePooling, convert_upstream_e3dsnn
from .e3dsnn_unet import E3DSNNUNet, SpikeSkipFusion, convert_upstream_e3dsnn_seg

__all__ = ['E3DSNN', 'SparseGlobalAveragePooling', 'convert_upstream_e3dsnn',
           'PointsDataPreprocessor', 'sparse_batch', 'E3DSNNUNet', 'SpikeSkipFusion',
           'convert_upstream_e3dsnn_seg']
