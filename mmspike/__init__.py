"""mmspike: spiking neural networks for OpenMMLab.

Importing mmspike has no side effect on other libraries; the fixes of third-party code it relies on
are explicit calls (:func:`mmspike.engine.apply_patches`, made by ``SpikeRunner`` and the tools).
"""
__version__ = '0.1.0'

__all__ = ['__version__']
