"""The execution mode of a model: mmspike's fast path or the plain (reference) path.

Both paths compute the same function with the same weights; only *how* differs:

* ``'fast'`` (default): integer neurons fire in one fused pass (a C kernel on the CPU, a Triton
  kernel on CUDA, fused torch ops elsewhere) and keep one byte per element for backward;
  a neuron feeding convolutions is fused with them (:func:`~mmspike.models.layers.spike_convs`)
  so the spikes are kept as bytes, not floats; spike attention runs in the cheaper order
  without layout copies.
* ``'plain'``: the straightforward PyTorch composition the upstream code uses: ``clamp`` / ``round``
  composed by autograd (saving the float input), ``(Q K^T) V`` attention, no fusion. It is the
  baseline the benchmarks measure against and the reference the tests compare with.

The mode is state of each module that branches on it (:class:`ExecutionModeMixin`: neurons,
spike attention), like its weights: two models in one process can run in different modes, and
``torch.compile`` sees an attribute of the module, not a global. Set it on a whole model with
:func:`set_execution_mode` (a visitor, like :func:`~mmspike.models.set_spike_driven`) or for a
block of code with the :func:`execution_mode` context manager. A module built without an explicit
``execution_mode`` argument takes :func:`default_execution_mode`: ``'fast'``, or the environment
variable ``MMSPIKE_EXECUTION_MODE`` read *when the module is constructed* (e.g. to build a whole
training run from a config on the plain path); it is never read on a forward.
"""
import os
from contextlib import contextmanager
from typing import Iterator, Optional, Set

from torch import nn

from .module_state import restoring

EXECUTION_MODES = ('fast', 'plain')
ENV_VAR = 'MMSPIKE_EXECUTION_MODE'


def check_execution_mode(mode: str) -> str:
    """``mode`` if it is one of :data:`EXECUTION_MODES`, else ``ValueError``."""
    if mode not in EXECUTION_MODES:
        raise ValueError(f'execution mode must be one of {EXECUTION_MODES}, got {mode!r}')
    return mode


def default_execution_mode() -> str:
    """The mode a module gets at construction: ``$MMSPIKE_EXECUTION_MODE`` or ``'fast'``."""
    mode = os.environ.get(ENV_VAR, 'fast')
    if mode not in EXECUTION_MODES:
        raise ValueError(f'{ENV_VAR} must be one of {EXECUTION_MODES}, got {mode!r}')
    return mode


class ExecutionModeMixin:
    """A module that computes differently in the fast and the plain mode.

    It holds its mode in ``self.execution_mode`` (set by :meth:`init_execution_mode` in the
    constructor, changed by :func:`set_execution_mode`) and branches on :attr:`fast_path`.
    """

    execution_mode: str

    def init_execution_mode(self, mode: Optional[str] = None) -> None:
        """Set the construction-time mode: ``mode``, or :func:`default_execution_mode`."""
        self.execution_mode = default_execution_mode() if mode is None else \
            check_execution_mode(mode)

    @property
    def fast_path(self) -> bool:
        """Whether this module takes the fast path."""
        return self.execution_mode == 'fast'


def execution_mode_modules(model: nn.Module) -> Iterator[nn.Module]:
    """Every module of ``model`` (itself included) that has an execution mode."""
    return (m for m in model.modules() if isinstance(m, ExecutionModeMixin))


def set_execution_mode(model: nn.Module, mode: str) -> int:
    """Switch every module of ``model`` that has an execution mode to ``mode``.

    Returns:
        int: the number of modules switched.
    """
    check_execution_mode(mode)
    if not isinstance(model, nn.Module):
        raise TypeError(f'set_execution_mode(model, mode) needs an nn.Module, got '
                        f'{type(model).__name__}')
    n = 0
    for m in execution_mode_modules(model):
        m.execution_mode = mode
        n += 1
    return n


def get_execution_mode(model: nn.Module) -> Set[str]:
    """The set of modes the modules of ``model`` are in (empty when none has a mode)."""
    return {m.execution_mode for m in execution_mode_modules(model)}


@contextmanager
def execution_mode(model: nn.Module, mode: str) -> Iterator[nn.Module]:
    """Context manager: run ``model`` in ``mode``; each module gets its own previous mode back
    afterwards (also on an error)."""
    check_execution_mode(mode)
    with restoring(execution_mode_modules(model), 'execution_mode'):
        set_execution_mode(model, mode)
        yield model
