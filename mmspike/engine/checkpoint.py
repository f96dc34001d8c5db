"""Weights-only checkpoint loading for MMEngine on torch >= 2.6.

torch.load defaults to ``weights_only=True`` since torch 2.6, and MMEngine 0.10.7's own checkpoints
then fail to load (``Unsupported global: mmengine.logging.history_buffer.HistoryBuffer``, mmengine
issue 1655). Setting ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` would let any checkpoint run code, so
instead we allow exactly the plain-data classes MMEngine writes into its checkpoints.

One more obstacle: ``HistoryBuffer.__getstate__`` pickles its class-level statistics methods as
``getattr(HistoryBuffer, 'min')`` etc., and ``getattr`` can never be a safe global.
:func:`mmspike.engine.patches.patch_history_buffer_pickling` (applied by :class:`SpikeRunner` and
mmspike's tools, never by an import) makes HistoryBuffer pickle plain data only, so checkpoints
written after it load weights-only. Checkpoints written by plain MMEngine are refused with the
unpickler's error.
"""
import os
import pickle
import re
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import torch


def _numpy_globals() -> List[Any]:
    dtypes = [type(np.dtype(t)) for t in ('float16', 'float32', 'float64', 'int8', 'int16', 'int32',
                                            'int64', 'uint8', 'uint16', 'uint32', 'uint64', 'bool')]
    scalars = [np.float16, np.float32, np.float64, np.int8, np.int16, np.int32, np.int64,
               np.uint8, np.uint16, np.uint32, np.uint64, np.bool_]
    try:  # numpy >= 1.25 moved the reconstructor to numpy._core
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # pragma: no cover
        from numpy.core.multiarray import _reconstruct, scalar
    return [np.ndarray, np.dtype, _reconstruct, scalar] + dtypes + scalars


def register_checkpoint_safe_globals() -> None:
    """Allow the plain-data globals of MMEngine checkpoints (``HistoryBuffer``, ``ConfigDict`` —
    a dataset's ``metainfo`` given in a config lands in ``meta['dataset_meta']`` as one — numpy
    arrays, dtypes and scalars) under ``torch.load(weights_only=True)``.

    Idempotent (torch keeps a set). :func:`load_checkpoint_file` calls it before reading; it
    only widens torch's weights-only allow-list by these data classes.
    """
    from mmengine.config import ConfigDict
    from mmengine.logging.history_buffer import HistoryBuffer
    torch.serialization.add_safe_globals([HistoryBuffer, ConfigDict] + _numpy_globals())


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: empty, truncated, not a checkpoint, or unsafe."""


def _explain_load_error(path: str, err: BaseException) -> str:
    """One sentence on why ``torch.load(path, weights_only=True)`` failed, without torch's advice
    to retry with ``weights_only=False`` (that would run whatever code the file holds)."""
    msg = str(err)
    unsafe = re.search(r'Unsupported global: GLOBAL (\S+)', msg)
    if unsafe:
        return (f'refusing to load {path!r}: it needs the global {unsafe.group(1)} to unpickle '
                f'(Unsupported global), and checkpoints are loaded as weights only; a file '
                f'written by torch.save of plain tensors, dicts and numbers loads')
    with open(path, 'rb') as f:
        magic = f.read(4)
    if magic == b'PK\x03\x04':  # torch.save's zip container
        return (f'{path!r} is a truncated or corrupted checkpoint archive (an interrupted write '
                f'or copy?): {msg.split(". ")[0]}')
    detail = msg.split('WeightsUnpickler error:')[-1].split('Check the documentation')[0]
    detail = ' '.join(detail.split()) or type(err).__name__
    return (f'{path!r} is not a PyTorch checkpoint (neither a torch.save zip archive nor a '
            f'weights-only legacy pickle): {detail}')


def load_checkpoint_file(path: str, map_location: Any = 'cpu') -> Any:
    """``torch.load(path, weights_only=True)`` with errors that name the file and the problem.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: the file is empty, truncated or corrupted, not a checkpoint, or needs a
            global that is not a safe plain-data class (never suggests ``weights_only=False``).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'checkpoint not found: {path}')
    if os.path.getsize(path) == 0:
        raise CheckpointError(f'{path!r} is empty (0 bytes): not a checkpoint (an interrupted '
                              f'write?)')
    register_checkpoint_safe_globals()
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, ValueError, KeyError,
            AttributeError, ImportError, IndexError, TypeError, OSError) as e:
        # from None: torch's chained message advises weights_only=False, which is unsafe
        raise CheckpointError(_explain_load_error(path, e)) from None


def load_state_dict_file(path: str) -> Dict[str, torch.Tensor]:
    """Load an untrusted checkpoint file as weights only and return its state dict.

    Accepts MMEngine checkpoints (``{'state_dict': ...}``), timm/DeiT style ``{'model': ...}`` and
    bare state dicts. Raises ``ValueError`` naming the problem for anything else.
    """
    ckpt = load_checkpoint_file(path)
    if isinstance(ckpt, dict):
        for key in ('state_dict', 'model', 'module'):
            if key in ckpt and isinstance(ckpt[key], dict):
                ckpt = ckpt[key]
                break
    if not isinstance(ckpt, dict) or not all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        raise ValueError(f'{path!r} holds no state dict of tensors')
    return ckpt


#: How many keys of each kind a mismatch report names.
NUM_KEYS_NAMED = 5


def state_dict_mismatch(model: torch.nn.Module, state_dict: Dict[str, torch.Tensor],
                        allow_missing: Optional[Callable[[str], bool]] = None) -> Optional[str]:
    """Describe how ``state_dict`` differs from ``model.state_dict()`` (differently shaped,
    missing and unexpected keys, the first :data:`NUM_KEYS_NAMED` of each), or None if it matches.

    Args:
        allow_missing (callable, optional): keys of the model for which it returns True may be
            absent from ``state_dict`` (e.g. the classifier when loading a pre-trained encoder).
            Defaults to None (every key must be there).
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict
               and not (allow_missing is not None and allow_missing(k))]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [f'{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}'
              for k, v in state_dict.items()
              if k in own and hasattr(v, 'shape') and tuple(v.shape) != tuple(own[k].shape)]
    parts = []
    for what, keys in (('with a different shape', shapes), ('missing from the checkpoint', missing),
                       ('unexpected (not in the model)', unexpected)):
        if keys:
            extra = len(keys) - NUM_KEYS_NAMED
            more = f', ... ({extra} more)' if extra > 0 else ''
            parts.append(f'{len(keys)} keys {what}: {", ".join(keys[:NUM_KEYS_NAMED])}{more}')
    return '; '.join(parts) or None
