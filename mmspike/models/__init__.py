"""Importing this package registers every mmspike model component in ``mmspike.registry.MODELS``."""
from . import backbones, heads, layers, necks, neurons, selfsup  # noqa: F401
from . import data_preprocessors  # noqa: F401
from . import classifiers  # noqa: F401
from .neurons import set_spike_driven, spike_driven

__all__ = ['set_spike_driven', 'spike_driven']
from .execution import (execution_mode, fast_path, get_execution_mode, is_fast_path,
                        plain_path, set_execution_mode)
from .layers.fused import fuse_conv_bn

__all__ += ['execution_mode', 'fast_path', 'get_execution_mode', 'is_fast_path', 'plain_path',
            'set_execution_mode', 'fuse_conv_bn']
