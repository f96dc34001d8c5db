"""Shared stage plumbing of the staged spiking backbones (input to ``[T, B, ...]``, outputs,
freezing)."""
import copy
from typing import Dict, List, Optional, Sequence, Tuple, Union

from mmengine.model import BaseModule
from torch import Tensor, nn

from ..layers import to_time_sequence


def parse_out_indices(out_indices: Union[int, Sequence[int]], num_stages: int) -> Tuple[int, ...]:
    """Normalise ``out_indices`` (negative indices count from the end) to sorted stage ids."""
    if isinstance(out_indices, int):
        out_indices = (out_indices, )
    parsed = []
    for idx in out_indices:
        if isinstance(idx, bool) or not isinstance(idx, int) or not -num_stages <= idx < num_stages:
            raise ValueError(f'out index {idx!r} is out of range for {num_stages} stages')
        parsed.append(idx % num_stages)
    if not parsed or len(set(parsed)) != len(parsed):
        raise ValueError(f'out_indices {tuple(out_indices)} must name distinct stages')
    return tuple(sorted(parsed))


def check_arch(owner: str, arch_settings: Dict[str, dict], arch_keys: Sequence[str],
               arch: Union[str, dict], required: Sequence[str]) -> dict:
    """The arch parser of every mmspike backbone: a deep copy of the named ``arch_settings``
    entry, or of a custom arch dict once it is checked for the ``required`` keys and for keys
    outside ``arch_keys``.

    Args:
        owner (str): The backbone's name, for errors.
        arch_settings (dict): Named archs.
        arch_keys (Sequence[str]): Every key a custom arch dict may have.
        arch (str | dict): A name of ``arch_settings`` or a custom arch dict.
        required (Sequence[str]): Keys a custom arch dict must have.
    """
    if isinstance(arch, str):
        if arch not in arch_settings:
            raise ValueError(f'unknown arch {arch!r} for {owner}; choose from '
                             f'{sorted(arch_settings)} or pass a dict')
        return copy.deepcopy(arch_settings[arch])
    if not isinstance(arch, dict):
        raise TypeError(f'arch must be a name or a dict, got {type(arch).__name__}')
    missing = set(required) - set(arch)
    if missing:
        raise ValueError(f'arch dict lacks {sorted(missing)}')
    unknown = set(arch) - set(arch_keys)
    if unknown:
        raise ValueError(f'arch dict has unknown keys {sorted(unknown)}; '
                         f'known keys: {list(arch_keys)}')
    return copy.deepcopy(arch)


class BaseSpikeBackbone(BaseModule):
    """Base of backbones made of ``self.stages`` (an ``nn.ModuleList`` run in order).

    Subclasses build ``self.stages`` and call :meth:`_init_outputs`. The forward repeats static
    images over ``self.T`` and returns the ``[T, B, C, H, W]`` outputs of ``out_indices``.
    """
    stages: nn.ModuleList
    arch_settings: Dict[str, dict] = {}
    arch_keys: Tuple[str, ...] = ()

    def _check_arch(self, arch: Union[str, dict], required: Sequence[str]) -> dict:
        """:func:`check_arch` with this backbone's ``arch_settings`` and ``arch_keys``."""
        return check_arch(type(self).__name__, self.arch_settings, self.arch_keys, arch, required)

    def __init__(self, in_channels: int, T: int,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if isinstance(T, bool) or not isinstance(T, int) or T < 1:
            raise ValueError(f'T must be an integer >= 1, got {T!r}')
        if in_channels < 1:
            raise ValueError(f'in_channels must be >= 1, got {in_channels}')
        self.T = T
        self.in_channels = in_channels

    def _init_outputs(self, stage_channels: Sequence[int], stage_strides: Sequence[int],
                      out_indices: Sequence[int], frozen_stages: int) -> None:
        num_stages = len(self.stages)
        self.num_stages = num_stages
        self.stage_strides = tuple(stage_strides)
        self.out_indices = parse_out_indices(out_indices, num_stages)
        self.out_channels = tuple(stage_channels[i] for i in self.out_indices)
        self.out_strides = tuple(stage_strides[i] for i in self.out_indices)
        if not -1 <= frozen_stages < num_stages:
            raise ValueError(f'frozen_stages={frozen_stages} must be in [-1, {num_stages - 1}]')
        self.frozen_stages = frozen_stages
        self._freeze_stages()

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """Args:
            x (Tensor): ``[B, C, H, W]`` images (repeated over ``T``) or ``[T, B, C, H, W]``
                sequences (event frames).

        Returns:
            tuple[Tensor]: ``[T, B, C_i, H_i, W_i]`` per index of ``out_indices``.
        """
        x = to_time_sequence(x, self.T)
        if x.shape[2] != self.in_channels:
            raise ValueError(f'{type(self).__name__} was built for {self.in_channels} input '
                             f'channels, got shape {tuple(x.shape)}')
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.out_indices:
                outs.append(x)
            if i == self.out_indices[-1]:
                break  # later stages would be computed for nothing
        return tuple(outs)

    def _freeze_stages(self) -> None:
        for i in range(self.frozen_stages + 1):
            stage = self.stages[i]
            stage.eval()
            for p in stage.parameters():
                p.requires_grad = False

    def train(self, mode: bool = True) -> 'BaseSpikeBackbone':
        super().train(mode)
        self._freeze_stages()
        return self
