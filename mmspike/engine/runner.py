"""An MMEngine ``Runner`` that refuses wrong checkpoints and never loses the last good one."""
import os
import os.path as osp
import re
from collections import OrderedDict
from typing import Callable, Dict, List, Optional, Tuple, Union

import torch
from mmengine.dist import master_only
from mmengine.hooks import CheckpointHook
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint, _load_checkpoint_to_model
from torch import nn

from mmspike.registry import HOOKS, RUNNERS
from .checkpoint import CheckpointError, load_checkpoint_file, state_dict_mismatch
from .patches import apply_patches

#: how many keys of each kind a mismatch error names


@HOOKS.register_module()
class SafeCheckpointHook(CheckpointHook):
    """MMEngine's ``CheckpointHook`` that deletes outdated checkpoints only after the new one is
    on disk.

    MMEngine removes the oldest checkpoint *before* writing the new one, so with
    ``max_keep_ckpts=1`` a kill during the write leaves nothing to resume. Here removals requested
    while saving are deferred until the save returned. Takes the arguments of ``CheckpointHook``;
    :class:`SpikeRunner` uses it in place of ``CheckpointHook``.
    """

    class _DeferRemoval:
        """Proxy of a file backend that records ``remove``/``rmtree`` instead of doing them."""

        def __init__(self, backend, pending: List[Tuple[str, str]]) -> None:
            self._backend = backend
            self._pending = pending

        def remove(self, path):
            self._pending.append(('remove', path))

        def rmtree(self, path):
            self._pending.append(('rmtree', path))

        def __getattr__(self, name):
            return getattr(self._backend, name)

    def _save_checkpoint_with_step(self, runner, step, meta):
        backend, pending = self.file_backend, []
        self.file_backend = self._DeferRemoval(backend, pending)
        try:
            super()._save_checkpoint_with_step(runner, step, meta)
        finally:
            self.file_backend = backend
        for op, path in pending:  # the new checkpoint is complete: now drop the old ones
            getattr(backend, op)(path)


@RUNNERS.register_module()
class SpikeRunner(Runner):
    """MMEngine's ``Runner`` (0.10.7) with checkpoint handling that fails loudly or recovers.

    ``tools/train.py`` and ``tools/test.py`` use it; configs may also set
    ``runner_type = 'mmspike.SpikeRunner'``. Differences from ``Runner``:

    - **Strict loading.** ``load_from``, ``resume`` and ``tools/test.py`` refuse a checkpoint whose
      keys or shapes differ from the model, naming the first missing, unexpected and reshaped keys
      (MMEngine loads with ``strict=False``: a checkpoint of another model only logs warnings and
      the run goes on with random weights). Partial loading (e.g. a backbone into a detector) is
      an explicit opt-out: ``load_strict = False`` in the config, or ``--allow-partial-load``.
    - **Safe, clear reading.** Local checkpoints are read weights-only by
      :func:`~mmspike.engine.checkpoint.load_checkpoint_file`, whose errors name the file and
      say whether it is empty, truncated or not a checkpoint at all.
    - **Atomic writing.** A checkpoint is written to a temporary file in the same directory,
      fsynced, then renamed over the final name, so a kill leaves either the complete new file or
      none; :class:`SafeCheckpointHook` replaces ``CheckpointHook`` so that outdated checkpoints
      are deleted only after that.
    - **Resume that recovers.** ``resume=True`` without ``load_from`` tries the checkpoints of the
      work dir newest first (the ``last_checkpoint`` pointer, then ``epoch_N.pth`` /
      ``iter_N.pth`` by N), skips unreadable ones with a warning saying why and logs which one it
      resumed from. A work dir without checkpoints logs that training starts from scratch; one whose
      checkpoints are all unreadable is an error. ``resume=True`` with a ``load_from`` that does not
      exist is an error.
    - **Empty evaluations fail.** :meth:`val` and :meth:`test` raise when the evaluators return
      no metric at all (validation inside ``train`` is not affected).
    - **Third-party fixes applied.** :func:`~mmspike.engine.patches.apply_patches` runs before
      MMEngine's setup (checkpoints that load weights-only; spconv on the CPU).
    """

    def __init__(self, *args, **kwargs) -> None:
        apply_patches()
        super().__init__(*args, **kwargs)
        strict = self.cfg.get('load_strict', True)
        if not isinstance(strict, bool):
            raise TypeError(f'load_strict must be True or False, got {strict!r}')
        self.load_strict = strict

    # ------------------------------------------------------------------ hooks
    def register_default_hooks(self, hooks=None) -> None:
        hooks = dict(hooks or {})
        ckpt = hooks.get('checkpoint', dict(type='CheckpointHook', interval=1))
        if isinstance(ckpt, dict) and ckpt.get('type') in ('CheckpointHook',
                                                          'mmengine.CheckpointHook',
                                                          CheckpointHook):
            hooks['checkpoint'] = dict(ckpt, type=SafeCheckpointHook)
        super().register_default_hooks(hooks)

    # ------------------------------------------------------------------ loading
    def load_checkpoint(self, filename: str, map_location: Union[str, Callable] = 'cpu',
                        strict: Optional[bool] = None,
                        revise_keys: list = [(r'^module.', '')]):
        """Load ``filename`` into the model; ``strict`` defaults to ``self.load_strict``."""
        strict = self.load_strict if strict is None else strict
        if '://' in filename:  # URLs and other schemes: MMEngine's loaders
            checkpoint = _load_checkpoint(filename, map_location=map_location)
        else:
            checkpoint = load_checkpoint_file(filename, map_location=map_location)
        if not isinstance(checkpoint, dict):
            raise CheckpointError(f'{filename!r} holds a {type(checkpoint).__name__}, not a '
                                  f'checkpoint dict')
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        model = self.model.module if is_model_wrapper(self.model) else self.model
        state_dict = checkpoint.get('state_dict', checkpoint)
        if strict:
            revised = OrderedDict(state_dict)
            for pattern, repl in revise_keys:
                revised = OrderedDict((re.sub(pattern, repl, k), v) for k, v in revised.items())
            problem = state_dict_mismatch(model, revised)
            if problem:
                raise CheckpointError(
                    f'checkpoint {filename} does not match the model of this config: {problem}. '
                    f'Is it a checkpoint of another model? To load the matching part only, set '
                    f'load_strict=False in the config (or pass --allow-partial-load)')
        checkpoint = _load_checkpoint_to_model(model, checkpoint, strict,
                                               revise_keys=revise_keys)
        self._has_loaded = True
        self.logger.info(f'Load checkpoint from {filename}'
                         + ('' if strict else ' (partial loading allowed: load_strict=False)'))
        return checkpoint

    def load_or_resume(self) -> None:
        if self._has_loaded:
            return None
        if self._resume and self._load_from is None:
            path = self.find_resumable_checkpoint()
            if path is None:
                self.logger.warning(f'resume: no checkpoint in {self.work_dir} to resume from; '
                                    f'training starts from scratch')
                return None
            self.resume(path)
            self._has_loaded = True
            return None
        if (self._load_from is not None and '://' not in self._load_from
                and not osp.isfile(self._load_from)):
            what = 'resume' if self._resume else 'load_from'
            raise FileNotFoundError(f'{what}: checkpoint not found: {self._load_from}')
        return super().load_or_resume()

    def find_resumable_checkpoint(self) -> Optional[str]:
        """The newest readable checkpoint of the work dir, logging the ones it skipped, or None
        when there is none at all.

        Raises:
            CheckpointError: the work dir has checkpoints but none of them is readable.
        """
        candidates = []
        pointer = osp.join(self.work_dir, 'last_checkpoint')
        if osp.isfile(pointer):
            with open(pointer) as f:
                last = f.read().strip()
            if last:
                candidates.append(last)
        numbered = []
        for name in os.listdir(self.work_dir):
            m = re.fullmatch(r'(epoch|iter)_(\d+)\.pth', name)
            if m:
                numbered.append((int(m.group(2)), osp.join(self.work_dir, name)))
        for _, path in sorted(numbered, reverse=True):
            if all(not osp.samefile(path, c) for c in candidates if osp.exists(c)):
                candidates.append(path)
        skipped = []
        for path in candidates:
            try:
                ckpt = load_checkpoint_file(path)
                if not isinstance(ckpt, dict) or 'meta' not in ckpt or 'state_dict' not in ckpt:
                    raise CheckpointError(f'{path!r} is not a training checkpoint (no meta or '
                                          f'state_dict to resume from)')
            except (CheckpointError, FileNotFoundError) as e:
                skipped.append(f'{path} ({e})')
                self.logger.warning(f'resume: skipping {path}: {e}')
                continue
            del ckpt
            if skipped:
                self.logger.warning(f'resume: resuming from {path}, the newest readable checkpoint '
                                    f'(skipped {len(skipped)} unreadable)')
            else:
                self.logger.info(f'resume: resuming from {path}, the newest checkpoint')
            return path
        if skipped:
            raise CheckpointError(f'resume: no readable checkpoint in {self.work_dir}: '
                                  + '; '.join(skipped))
        return None

    # ------------------------------------------------------------------ evaluation
    def val(self) -> dict:
        return self._check_metrics(super().val(), 'validation')

    def test(self) -> dict:
        return self._check_metrics(super().test(), 'test')

    def _check_metrics(self, metrics: dict, what: str) -> dict:
        """An evaluation without a single metric (e.g. mmdet's CocoMetric when the model made no
        detection: "The testing results of the whole dataset is empty") is an error, not a
        success with nothing to show."""
        if not metrics:
            raise RuntimeError(f'the {what} evaluation produced no metrics ({metrics!r}): the '
                               f'evaluator had no results to score (e.g. a detector without a '
                               f'single detection above its score threshold); see the log above')
        return metrics

    # ------------------------------------------------------------------ saving
    @master_only
    def save_checkpoint(self, out_dir: str, filename: str, file_client_args: Optional[dict] = None,
                        save_optimizer: bool = True, save_param_scheduler: bool = True,
                        meta: Optional[dict] = None, by_epoch: bool = True,
                        backend_args: Optional[dict] = None):
        """``Runner.save_checkpoint``, atomic for local directories: the file is written under a
        temporary name in ``out_dir``, fsynced and renamed to ``filename``."""
        kwargs = dict(file_client_args=file_client_args, save_optimizer=save_optimizer,
                      save_param_scheduler=save_param_scheduler, meta=meta, by_epoch=by_epoch,
                      backend_args=backend_args)
        if file_client_args is not None or backend_args is not None or '://' in out_dir:
            return super().save_checkpoint(out_dir, filename, **kwargs)
        tmp_name = f'.{filename}.tmp-{os.getpid()}'
        tmp, final = osp.join(out_dir, tmp_name), osp.join(out_dir, filename)
        try:
            super().save_checkpoint(out_dir, tmp_name, **kwargs)
            _fsync(tmp)
            os.replace(tmp, final)
        except BaseException:
            if osp.exists(tmp):
                os.remove(tmp)
            raise
        _fsync(out_dir, directory=True)  # make the rename itself durable


def _fsync(path: str, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
