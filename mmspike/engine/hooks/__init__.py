from .channels_last_hook import ChannelsLastHook
from .firing_rate_hook import FiringRateHook

__all__ = ['ChannelsLastHook', 'FiringRateHook']
from .pretrained_backbone_hook import PretrainedBackboneHook, load_state_dict_exact

__all__ += ['PretrainedBackboneHook', 'load_state_dict_exact']
