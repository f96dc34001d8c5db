from .attention import (SpikeDrivenAttention, build_projection, cheaper_attention_order,
                        spike_attention)
from .rep_conv import BNAndPad, LinearPair, RepConv, fuse_conv_bn
from .blocks import SpikeConvBlock, SpikeDropPath, SpikeTransformerBlock, drop_path
from .conv import SpikeConvBN
from .mlp import SpikeMLP
from .sepconv import SpikeSepConv
from .time import (TimeDistributed, as_time_major, fold_time, reduce_time, to_time_sequence,
                   unfold_time)
from .yolo_blocks import MSAllConvBlock, MSConvBlock, SpikeSPPF

__all__ = ['SpikeConvBN', 'TimeDistributed', 'as_time_major', 'fold_time', 'unfold_time',
           'reduce_time',
           'to_time_sequence', 'SpikeSepConv', 'SpikeMLP', 'SpikeDrivenAttention',
           'spike_attention', 'cheaper_attention_order', 'build_projection', 'BNAndPad',
           'RepConv', 'LinearPair', 'SpikeConvBlock', 'SpikeTransformerBlock', 'SpikeDropPath',
           'drop_path', 'MSConvBlock', 'MSAllConvBlock', 'SpikeSPPF']
from .ssc import (ActiveSites, SparseBatchNorm2d, SparseConv2d, SpikeSparseConv2d, convert_to_ssc,
                  downsample_mask)
from .ssc3d import (SpikeSparseBasicBlock3d, SpikeSparseConv3d, SpikeVoxelCoding, batch_voxelize,
                    voxelize)

__all__ += ['ActiveSites', 'SparseConv2d', 'SparseBatchNorm2d', 'SpikeSparseConv2d', 'convert_to_ssc',
            'downsample_mask', 'SpikeSparseConv3d', 'SpikeSparseBasicBlock3d', 'SpikeVoxelCoding',
            'voxelize', 'batch_voxelize']
from .fused import spike_convs

__all__ += ['fuse_conv_bn', 'spike_convs']
