"""Registered neuron presets: configurations of :class:`IntegerNeuron` and the :class:`LIF`."""
from typing import Optional

from mmspike.registry import MODELS
from .base import LIF, IntegerNeuron

MODELS.register_module(module=IntegerNeuron)
MODELS.register_module(module=LIF)

#: The LIF of Spikformer and Meta-SpikeFormer: tau 2, threshold 1 in the body ...
SPIKFORMER_LIF = dict(type='LIF', tau=2.0, v_threshold=1.0)
#: ... and threshold 0.5 on the attention output.
SPIKFORMER_ATTN_LIF = dict(type='LIF', tau=2.0, v_threshold=0.5)


@MODELS.register_module()
class MultiSpike(IntegerNeuron):
    """Spike Firing Approximation neuron of E-SpikeFormer: ``s = round(clamp(u, 0, D)) / norm``.

    No leak: every time step fires from its own input (T=1 for static images, the "1×D" setting).
    See :class:`IntegerNeuron` for the arguments; ``norm`` defaults to ``D`` (outputs in [0, 1]).
    """

    def __init__(self, max_spikes: int = 4, norm: Optional[float] = None,
                 round_mode: str = 'half_up', grad_window: str = 'closed',
                 execution_mode: Optional[str] = None) -> None:
        super().__init__(max_spikes=max_spikes, norm=norm, round_mode=round_mode,
                         grad_window=grad_window, leak=0.0, execution_mode=execution_mode)


@MODELS.register_module()
class ILIF(IntegerNeuron):
    """Integer LIF of SpikeYOLO: ``u_t = (u_{t-1} - s_{t-1}) * leak + x_t``,
    ``s_t = round(clamp(u_t, 0, D))``, reset detached, raw integer outputs by default.

    See :class:`IntegerNeuron` for the arguments.
    """

    def __init__(self, max_spikes: int = 4, norm: Optional[float] = 1.0, leak: float = 0.25,
                 round_mode: str = 'half_up', grad_window: str = 'closed',
                 execution_mode: Optional[str] = None) -> None:
        super().__init__(max_spikes=max_spikes, norm=norm, round_mode=round_mode,
                         grad_window=grad_window, leak=leak, reset='soft', detach_reset=True,
                         execution_mode=execution_mode)
