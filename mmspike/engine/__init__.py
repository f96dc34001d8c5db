from .checkpoint import (CheckpointError, load_checkpoint_file, load_state_dict_file,
                         register_checkpoint_safe_globals, state_dict_mismatch)
from .hooks import *  # noqa: F401,F403
from .patches import apply_patches, patch_history_buffer_pickling
from .runner import SafeCheckpointHook, SpikeRunner

__all__ = ['apply_patches', 'patch_history_buffer_pickling', 'CheckpointError',
           'load_checkpoint_file', 'load_state_dict_file',
           'register_checkpoint_safe_globals', 'SafeCheckpointHook', 'SpikeRunner',
           'state_dict_mismatch']
