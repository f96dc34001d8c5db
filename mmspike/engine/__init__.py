from .checkpoint import load_state_dict_file, register_checkpoint_safe_globals
from .hooks import *  # noqa: F401,F403

__all__ = ['load_state_dict_file', 'register_checkpoint_safe_globals']
