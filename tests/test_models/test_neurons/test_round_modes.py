"""The three rounding modes of the integer neuron against the upstream formulas they reproduce,
on every execution path (plain, fast C kernel, fast torch ops, spike-driven binary IF).

* ``'half_even'``: upstream's base family and SpikeYOLO, ``torch.round(torch.clamp(u, 0, D))``;
* ``'floor_plus_half'``: upstream's large family, ``torch.floor(torch.clamp(u, 0, D) + 0.5)``
  computed in the input dtype (fp32 ``0.49999997 + 0.5`` rounds to 1.0);
* ``'half_up'``: exact ties-up (mmspike's default), which differs from the previous one there.
"""
import pytest
import torch

from mmspike.models.execution import execution_mode
from mmspike.models.neurons import (MultiSpike, kernel_backend, kernels, round_half_up,
                                    spike_driven)

D = 4
UPSTREAM = {
    'half_even': lambda u: torch.round(torch.clamp(u, 0, D)),
    'floor_plus_half': lambda u: torch.floor(torch.clamp(u, 0, D) + 0.5),
    # not an upstream formula: ties up, decided exactly (in float64)
    'half_up': lambda u: round_half_up(torch.clamp(u, 0, D).double()).to(u.dtype),
}


def _values(dtype):
    """A sweep over [-1, 5] plus every tie k + 0.5 and its two neighbours in ``dtype``."""
    ties = torch.arange(-1, D + 1, dtype=torch.float64).to(dtype) + 0.5
    up = torch.nextafter(ties, torch.full_like(ties, 10))
    down = torch.nextafter(ties, torch.full_like(ties, -10))
    sweep = torch.linspace(-1, D + 1, 4001, dtype=torch.float64).to(dtype)
    return torch.cat([ties, up, down, sweep, torch.tensor([0.0, D, 6e4], dtype=dtype)])


def _fire_all_paths(mode, u):
    neuron = MultiSpike(D, norm=1, round_mode=mode)
    x = u.view(1, -1)
    outs = {}
    with execution_mode(neuron, 'plain'):
        outs['plain'] = neuron(x)
    with execution_mode(neuron, 'fast'):
        outs['fast'] = neuron(x)
        with kernel_backend(neuron, 'torch'):
            outs['fast-torch'] = neuron(x)
        with spike_driven(neuron):
            outs['spike-driven'] = neuron(x)
            outs['binary-train'] = neuron.last_binary.sum(0, keepdim=True)
    return outs


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize('mode', sorted(UPSTREAM))
def test_round_modes_equal_upstream_formula(mode, dtype):
    u = _values(dtype)
    expected = UPSTREAM[mode](u).view(1, -1)
    for path, out in _fire_all_paths(mode, u).items():
        assert out.dtype == dtype, path
        assert torch.equal(out, expected), (mode, dtype, path)


def test_floor_plus_half_differs_from_exact_half_up_in_fp32():
    u = torch.tensor([0.49999997], dtype=torch.float32)  # the largest fp32 below 0.5
    assert u.item() < 0.5
    for out in _fire_all_paths('floor_plus_half', u).values():
        assert out.item() == 1.0  # u + 0.5 rounds to 1.0 in fp32, as upstream's large family
    for out in _fire_all_paths('half_up', u).values():
        assert out.item() == 0.0
    # in fp64 the same value is not a tie: both give 0
    for out in _fire_all_paths('floor_plus_half', u.double()).values():
        assert out.item() == 0.0


def test_half_even_ties_go_to_even():
    u = torch.tensor([0.5, 1.5, 2.5, 3.5, 4.5], dtype=torch.float32)
    for out in _fire_all_paths('half_even', u).values():
        assert out.view(-1).tolist() == [0.0, 2.0, 2.0, 4.0, 4.0]
    for out in _fire_all_paths('half_up', u).values():
        assert out.view(-1).tolist() == [1.0, 2.0, 3.0, 4.0, 4.0]


def test_kernel_refuses_unknown_rounding():
    with pytest.raises(ValueError, match='rounding must be 0'):
        kernels.fire_forward(torch.zeros(3), 4, 1.0, 3)
