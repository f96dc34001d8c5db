"""One switch between mmspike's fast execution path and the plain (reference) path.

Both paths compute the same function with the same weights; only *how* differs:

* ``'fast'`` (default): integer neurons fire in one fused pass (a C kernel on the CPU, a Triton
  kernel on CUDA, fused torch ops elsewhere) and keep one byte per element for backward;
  a neuron feeding convolutions is fused with them (:func:`~mmspike.models.layers.spike_conv2d`)
  so the spikes are kept as bytes, not floats; spike attention runs in the cheaper order
  without layout copies.
* ``'plain'``: the straightforward PyTorch composition the upstream code uses: ``clamp`` / ``round``
  composed by autograd (saving the float input), ``(Q K^T) V`` attention, no fusion. It is the
  baseline the benchmarks measure against and the reference the tests compare with.

Select it for a whole process with :func:`set_execution_mode` (or the environment variable
``MMSPIKE_EXECUTION_MODE=plain``, read at import, e.g. for a training run started from a config),
or for a block of code with the :func:`plain_path` / :func:`fast_path` context managers.
"""
import os
from contextlib import contextmanager
from typing import Iterator

EXECUTION_MODES = ('fast', 'plain')


def _check(mode: str) -> str:
    if mode not in EXECUTION_MODES:
        raise ValueError(f'execution mode must be one of {EXECUTION_MODES}, got {mode!r}')
    return mode


_mode = _check(os.environ.get('MMSPIKE_EXECUTION_MODE', 'fast'))


def get_execution_mode() -> str:
    """The current execution mode, ``'fast'`` or ``'plain'``."""
    return _mode


def set_execution_mode(mode: str) -> str:
    """Switch every mmspike module of this process to ``mode`` (``'fast'`` or ``'plain'``).

    Returns:
        str: the previous mode (to restore it).
    """
    global _mode
    previous, _mode = _mode, _check(mode)
    return previous


def is_fast_path() -> bool:
    """Whether mmspike modules take the fast path now."""
    return _mode == 'fast'


@contextmanager
def execution_mode(mode: str) -> Iterator[str]:
    """Context manager: run the block in ``mode``, restore the previous mode afterwards."""
    previous = set_execution_mode(mode)
    try:
        yield mode
    finally:
        set_execution_mode(previous)


def plain_path():
    """Context manager: run the block on the plain (reference) path."""
    return execution_mode('plain')


def fast_path():
    """Context manager: run the block on the fast path."""
    return execution_mode('fast')
