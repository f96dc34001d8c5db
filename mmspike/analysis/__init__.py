"""Analysis of spiking models: integer-aware SOP / energy counting, firing-rate recording and the
spike-driven inference check."""
from .firing import NeuronFiringRecorder, NeuronStats, named_neurons, neuron_group
from .sops import E_AC_PJ, E_MAC_PJ, SOPCounter, SOPReport, count_sops, find_time_steps
from .spike_driven import check_spike_driven

__all__ = [
    'NeuronFiringRecorder', 'NeuronStats', 'named_neurons', 'neuron_group', 'E_AC_PJ',
    'E_MAC_PJ', 'SOPCounter', 'SOPReport', 'count_sops', 'find_time_steps', 'check_spike_driven'
]
