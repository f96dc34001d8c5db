"""Importing this package registers every mmspike model component in ``mmspike.registry.MODELS``."""
from . import backbones, classifiers, data_preprocessors, heads, layers, necks, neurons, selfsup  # noqa: F401
from .neurons import set_spike_driven, spike_driven

__all__ = ['set_spike_driven', 'spike_driven']
