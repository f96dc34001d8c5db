"""Explicit, idempotent fixes of third-party code that mmspike's training and testing rely on.

Importing mmspike changes nothing in other libraries. :class:`~mmspike.engine.SpikeRunner` calls
:func:`apply_patches` when it is built, and so do ``tools/train.py`` and ``tools/test.py``; a user
with a runner or training loop of their own calls it once before building it::

    from mmspike.engine import apply_patches
    apply_patches()

Each patch can also be applied alone; every function may be called any number of times.

* :func:`patch_history_buffer_pickling`: MMEngine 0.10.7's ``HistoryBuffer`` pickles
  ``getattr(HistoryBuffer, 'min')`` and friends into every checkpoint's message hub, so the
  checkpoint cannot be read with ``torch.load(weights_only=True)`` (mmengine issue 1655). The
  patch makes it pickle plain data (its ``__setstate__`` restores the default statistics methods),
  and registers the plain-data classes MMEngine writes as torch safe globals
  (:func:`~mmspike.engine.checkpoint.register_checkpoint_safe_globals`).
* :func:`~mmspike.models.layers.spconv_support.ensure_spconv_cpu_support`: spconv 2.3.8's CPU
  convolution (wrong sums with more than one thread; a backward that needs CUDA). The sparse
  layers that run spconv also install it when they are constructed.
"""
from typing import Dict

from mmspike.models.layers.spconv_support import ensure_spconv_cpu_support
from .checkpoint import register_checkpoint_safe_globals

__all__ = ['apply_patches', 'patch_history_buffer_pickling', 'ensure_spconv_cpu_support',
           'history_buffer_pickling_patched']


def _history_buffer_getstate(self) -> dict:
    state = dict(self.__dict__)
    state.pop('statistics_methods', None)  # class-level methods: restored by __setstate__
    return state


def history_buffer_pickling_patched() -> bool:
    """Whether :func:`patch_history_buffer_pickling` has been applied in this process."""
    from mmengine.logging.history_buffer import HistoryBuffer
    return HistoryBuffer.__dict__.get('__getstate__') is _history_buffer_getstate


def patch_history_buffer_pickling() -> None:
    """Make MMEngine's ``HistoryBuffer`` pickle as plain data and allow the plain-data globals
    of MMEngine checkpoints under ``weights_only=True``. Idempotent."""
    from mmengine.logging.history_buffer import HistoryBuffer
    if not history_buffer_pickling_patched():
        HistoryBuffer.__getstate__ = _history_buffer_getstate
    register_checkpoint_safe_globals()


def apply_patches(spconv: bool = True) -> Dict[str, bool]:
    """Apply every mmspike patch of third-party code (idempotent).

    Args:
        spconv (bool): Also install spconv's CPU support (a no-op without spconv).
            Defaults to True.

    Returns:
        dict[str, bool]: which patches are in place.
    """
    patch_history_buffer_pickling()
    applied = {'history_buffer_pickling': history_buffer_pickling_patched()}
    if spconv:
        applied['spconv_cpu_support'] = ensure_spconv_cpu_support()
    return applied
