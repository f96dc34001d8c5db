from .firing_rate_hook import FiringRateHook

__all__ = ['FiringRateHook']
from .pretrained_backbone_hook import PretrainedBackboneHook, load_state_dict_exact

__all__ += ['PretrainedBackboneHook', 'load_state_dict_exact']
