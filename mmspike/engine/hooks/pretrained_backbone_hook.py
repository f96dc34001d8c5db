"""Load pre-trained backbone weights by exact key (no silent ``strict=False``)."""
from typing import Dict, Optional

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from torch import Tensor, nn

from mmspike.registry import HOOKS
from ..checkpoint import load_state_dict_file


def load_state_dict_exact(module: nn.Module, state_dict: Dict[str, Tensor],
                          name: str = 'the module') -> None:
    """Load ``state_dict`` into ``module`` requiring every key to match exactly.

    Raises:
        KeyError: listing all missing and all unexpected keys.
        ValueError: listing the keys whose shapes differ.
    """
    own = module.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    if missing or unexpected:
        raise KeyError(f'checkpoint does not match {name} key for key: '
                       f'{len(missing)} missing {missing}, {len(unexpected)} unexpected '
                       f'{unexpected}')
    wrong = [f'{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}'
             for k, v in state_dict.items() if tuple(v.shape) != tuple(own[k].shape)]
    if wrong:
        raise ValueError(f'checkpoint shapes do not match {name}: {wrong}')
    module.load_state_dict(state_dict, strict=True)


@HOOKS.register_module()
class PretrainedBackboneHook(Hook):
    """Before training, load a backbone checkpoint into ``model.<module>`` by exact key.

    MMEngine's ``Pretrained`` initialiser loads with ``strict=False`` and only logs mismatches, so a
    renamed or reshaped layer silently keeps its random init. This hook fails instead, naming every
    missing and unexpected key. It runs after weight initialisation; a resumed run (``iter > 0``)
    keeps the weights of its checkpoint.

    Use in a config (``tools/model_converters/spike_mae2backbone.py`` writes such a file from a
    spike-MAE checkpoint)::

        custom_hooks = [dict(type='mmspike.PretrainedBackboneHook', checkpoint='backbone.pth')]

    Args:
        checkpoint (str): A weights-only file holding the backbone's state dict (bare keys, or
            wrapped in ``state_dict``).
        module (str): Attribute of the model to load into. Defaults to ``'backbone'``.
        prefix (str, optional): Only keys starting with it are used, with it stripped (e.g.
            ``'backbone.'`` for a whole-model checkpoint). Defaults to None (all keys).
    """

    priority = 'VERY_HIGH'

    def __init__(self, checkpoint: str, module: str = 'backbone',
                 prefix: Optional[str] = None) -> None:
        self.checkpoint = checkpoint
        self.module = module
        self.prefix = prefix

    def before_train(self, runner) -> None:
        if runner.iter > 0:
            runner.logger.info(f'{type(self).__name__}: resumed at iter {runner.iter}, keeping '
                               'the checkpoint\'s weights')
            return
        if getattr(runner, '_load_from', None) and not getattr(runner, '_resume', False):
            # load_from was loaded just before this hook runs; loading again would silently
            # replace part of that checkpoint.
            raise ValueError(f'{type(self).__name__} ({self.checkpoint!r}) and load_from '
                             f'({runner._load_from!r}) both set the weights of '
                             f'model.{self.module}; keep only one of them')
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        target = getattr(model, self.module, None)
        if not isinstance(target, nn.Module):
            raise AttributeError(f'the model has no module {self.module!r} to load '
                                 f'{self.checkpoint!r} into')
        state_dict = load_state_dict_file(self.checkpoint)
        if self.prefix is not None:
            state_dict = {k[len(self.prefix):]: v for k, v in state_dict.items()
                          if k.startswith(self.prefix)}
        load_state_dict_exact(target, state_dict, f'model.{self.module}')
        runner.logger.info(f'{type(self).__name__}: loaded all {len(state_dict)} tensors of '
                           f'model.{self.module} from {self.checkpoint}')
