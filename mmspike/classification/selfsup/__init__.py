from .spike_mae import (SpikeMAE, convert_espikeformer_to_ssc, load_state_dict_exact,
                        mae_to_backbone_state_dict, patch_mask_to_pixels, random_patch_mask)
from .spikformer_v2_mim import SpikformerV2MIM

__all__ = ['SpikeMAE', 'SpikformerV2MIM', 'convert_espikeformer_to_ssc',
           'mae_to_backbone_state_dict', 'load_state_dict_exact', 'random_patch_mask',
           'patch_mask_to_pixels']
