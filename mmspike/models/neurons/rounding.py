"""Rounding of membrane potentials to spike counts: the one implementation every firing path
(the plain path, the kernels' torch ops, spike-driven expansion checks) uses."""
import torch
from torch import Tensor

ROUND_MODES = ('half_up', 'half_even', 'floor_plus_half')
#: Integer codes of the rounding modes in the kernels (:mod:`.kernels`); True/False mean 1/0.
ROUND_CODES = {'half_even': 0, 'half_up': 1, 'floor_plus_half': 2}


def round_half_up(x: Tensor) -> Tensor:
    """``floor(x + 0.5)`` computed exactly in any float dtype.

    ``x + 0.5`` itself is inexact in fp16/bf16 (``0.49976 + 0.5`` rounds to 1.0 in fp16); the
    fractional part ``x - floor(x)`` is exact (Sterbenz), so compare it instead.
    """
    fl = torch.floor(x)
    return fl + (x - fl >= 0.5).to(x.dtype)


def round_to_int(x: Tensor, rounding: int) -> Tensor:
    """Round ``x`` to integers with a rounding code of :data:`ROUND_CODES`:

    * 0, ``'half_even'``: ``torch.round`` (ties to even), as the upstream base family and
      SpikeYOLO fire;
    * 1, ``'half_up'``: ties up, exactly (:func:`round_half_up`);
    * 2, ``'floor_plus_half'``: ``floor(x + 0.5)`` with the addition rounded in ``x``'s dtype,
      as the upstream large family computes it (fp32 ``x = 0.49999997`` gives 1, not 0).
    """
    rounding = int(rounding)
    if rounding == 1:
        return round_half_up(x)
    if rounding == 2:
        return torch.floor(x + 0.5)
    return torch.round(x)
