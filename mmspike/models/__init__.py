"""The core of mmspike: spiking neurons, layers, backbones and necks. Importing this package
registers them in ``mmspike.registry.MODELS``; it needs only torch and mmengine (spconv and Triton
are imported when a module that uses them runs). Task heads, algorithms and datasets live in the
task packages ``mmspike.classification``, ``mmspike.detection``, ``mmspike.segmentation`` and
``mmspike.points``."""
from . import backbones, layers, necks, neurons  # noqa: F401
from .neurons import set_spike_driven, spike_driven

__all__ = ['set_spike_driven', 'spike_driven']
from .execution import (default_execution_mode, execution_mode, get_execution_mode,
                        set_execution_mode)
from .layers.rep_conv import fuse_conv_bn

__all__ += ['default_execution_mode', 'execution_mode', 'get_execution_mode',
            'set_execution_mode', 'fuse_conv_bn']
