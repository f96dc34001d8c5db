"""State that changes how a model computes lives on its modules, set by visitors (execution mode,
spike-driven firing, kernel backend); one helper gives every module its own previous value back
after a block of code."""
from contextlib import contextmanager
from typing import Iterable, Iterator

from torch import nn


@contextmanager
def restoring(modules: Iterable[nn.Module], name: str) -> Iterator[None]:
    """Context manager: record attribute ``name`` of each of ``modules`` on entry and set it back
    on exit (also on an error), whatever the block changed."""
    previous = [(m, getattr(m, name)) for m in modules]
    try:
        yield
    finally:
        for m, value in previous:
            setattr(m, name, value)
