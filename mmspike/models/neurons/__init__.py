from .base import (BaseNeuron, IntegerNeuron, LIF, expand_to_binary, integer_neurons,
                   kernel_backend, round_half_up, set_finite_check, set_kernel_backend,
                   set_spike_driven, spike_driven)
from .presets import ILIF, MultiSpike
from .builder import build_neuron

__all__ = [
    'BaseNeuron', 'IntegerNeuron', 'MultiSpike', 'ILIF', 'LIF', 'expand_to_binary',
    'integer_neurons', 'round_half_up', 'set_finite_check', 'set_spike_driven', 'spike_driven',
    'set_kernel_backend', 'kernel_backend',
    'build_neuron'
]
from . import kernels  # noqa: F401
from .base import fused_fire, plain_fire

__all__ += ['kernels', 'fused_fire', 'plain_fire']
