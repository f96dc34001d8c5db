"""mmspike: spiking neural networks for OpenMMLab."""
from .engine.checkpoint import register_checkpoint_safe_globals

__version__ = '0.1.0'

register_checkpoint_safe_globals()

__all__ = ['__version__']
