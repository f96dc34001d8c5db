"""Log the firing rates of a spiking model during validation / testing."""
from collections import OrderedDict
from typing import TYPE_CHECKING, Dict, Optional, Sequence

import torch
from mmengine.dist import all_reduce
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmspike.registry import HOOKS

if TYPE_CHECKING:  # imported lazily: ``import mmspike`` must not import every model
    from mmspike.analysis.firing import NeuronFiringRecorder

MODES = ('val', 'test')


@HOOKS.register_module()
class FiringRateHook(Hook):
    """Measure the firing rate of every neuron over a validation (or test) epoch and log it.

    Rates are mean integer spike counts per neuron output element (``D`` inside, ``T`` not: see
    :mod:`mmspike.analysis.firing`), aggregated over groups of neurons as
    ``total spikes / total elements`` and summed over ranks in distributed runs. Each group is
    written to the runner's :class:`~mmengine.logging.MessageHub` as
    ``'{mode}/{log_name}/{group}'`` (plus ``'{mode}/{log_name}/all'``), so the ``LoggerHook``
    prints it with the metrics of the epoch and passes it to every visualizer backend
    (``add_scalars``: TensorBoard, WandB, the json log).

    Use in a config::

        custom_hooks = [dict(type='mmspike.FiringRateHook')]

    Args:
        prefix_depth (int, optional): Group neurons by the first ``prefix_depth`` parts of their
            module names. None groups by stage: up to the first numeric part
            (``backbone.stages.2``), or the parent module when there is none (``neck``).
            Defaults to None.
        prefixes (Sequence[str], optional): Explicit groups (module-name prefixes; a neuron goes
            to the longest one it starts with, neurons matching none are only in ``all``).
            Overrides ``prefix_depth``. Defaults to None.
        per_neuron (bool): Log every neuron on its own instead of groups. Defaults to False.
        log_name (str): Middle part of the logged keys. Defaults to ``'firing_rate'``.
        modes (Sequence[str]): Loops to measure, from ``('val', 'test')``.
            Defaults to ``('val', 'test')``.
    """
    priority = 'NORMAL'  # before LoggerHook (BELOW_NORMAL), which logs what we put in the hub

    def __init__(self, prefix_depth: Optional[int] = None,
                 prefixes: Optional[Sequence[str]] = None, per_neuron: bool = False,
                 log_name: str = 'firing_rate', modes: Sequence[str] = MODES) -> None:
        if prefix_depth is not None and (not isinstance(prefix_depth, int) or prefix_depth < 1):
            raise ValueError(f'prefix_depth must be an integer >= 1 or None, got {prefix_depth!r}')
        if isinstance(modes, str):
            modes = (modes, )
        bad = [m for m in modes if m not in MODES]
        if bad:
            raise ValueError(f'modes must be among {MODES}, got {list(modes)}')
        if not log_name or '/' in log_name:
            raise ValueError(f'log_name must be a non-empty name without "/", got {log_name!r}')
        self.prefix_depth = prefix_depth
        self.prefixes = sorted(prefixes, key=len, reverse=True) if prefixes is not None else None
        self.per_neuron = per_neuron
        self.log_name = log_name
        self.modes = tuple(modes)
        self._recorder: Optional['NeuronFiringRecorder'] = None
        self.last_rates: Dict[str, float] = OrderedDict()
        self._warned = False

    # ------------------------------------------------------------------ loop callbacks
    def before_val_epoch(self, runner) -> None:
        self._start(runner, 'val')

    def before_test_epoch(self, runner) -> None:
        self._start(runner, 'test')

    def after_val_epoch(self, runner, metrics: Optional[dict] = None) -> None:
        self._finish(runner, 'val')

    def after_test_epoch(self, runner, metrics: Optional[dict] = None) -> None:
        self._finish(runner, 'test')

    # ------------------------------------------------------------------ internals
    def _start(self, runner, mode: str) -> None:
        if mode not in self.modes:
            return
        if self._recorder is not None:  # an interrupted epoch left hooks behind
            self._recorder.stop()
        from mmspike.analysis.firing import NeuronFiringRecorder
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        recorder = NeuronFiringRecorder(model)
        if not recorder.stats:
            if not self._warned:
                runner.logger.warning('FiringRateHook: the model has no mmspike neurons; '
                                      'nothing to log')
                self._warned = True
            self._recorder = None
            return
        self._recorder = recorder.start()

    def _finish(self, runner, mode: str) -> None:
        recorder, self._recorder = self._recorder, None
        if recorder is None or mode not in self.modes:
            return
        recorder.stop()
        rates = self.compute_rates(recorder)
        self.last_rates = rates
        for key, rate in rates.items():
            runner.message_hub.update_scalar(f'{mode}/{self.log_name}/{key}', rate)

    def compute_rates(self, recorder: 'NeuronFiringRecorder') -> Dict[str, float]:
        """Group rates (or per-neuron rates) and ``'all'``, summed over ranks."""
        from mmspike.analysis.firing import neuron_group
        stats = list(recorder.stats.values())
        # One all-reduce of [spikes, elements] per neuron: rank totals, then ratios.
        counts = torch.tensor([[s.spikes, float(s.numel)] for s in stats], dtype=torch.float64)
        all_reduce(counts, op='sum')
        groups: Dict[str, list] = OrderedDict()
        for s, (spikes, numel) in zip(stats, counts.tolist()):
            if numel == 0:
                continue
            key = s.name if self.per_neuron else neuron_group(s.name, self.prefix_depth,
                                                              self.prefixes)
            if key is not None:
                g = groups.setdefault(key, [0.0, 0.0])
                g[0] += spikes
                g[1] += numel
        rates = OrderedDict((k, v[0] / v[1]) for k, v in groups.items())
        total = counts.sum(0).tolist()
        if total[1] > 0:
            rates['all'] = total[0] / total[1]
        return rates
