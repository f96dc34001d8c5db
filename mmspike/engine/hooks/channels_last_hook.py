"""Run a model's convolutions channels-last: the fastest memory format of mmspike's fast path on
the CPU."""
import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmspike.registry import HOOKS


@HOOKS.register_module()
class ChannelsLastHook(Hook):
    """Before the run (training, validation or testing), store the model's 4-D parameters and
    buffers channels-last (``model.to(memory_format=torch.channels_last)``).

    Images still arrive NCHW: a conv with channels-last weights writes a channels-last output,
    so every later map follows. On the CPU (oneDNN, AVX2) channels-last is the fastest format
    of the fast path for training and inference (``README.md``, "Speed and memory"); plain and
    fast stay bit-identical to each other in it, while the convolutions' summation order, and
    so the last bits, differ from NCHW. Parameters are converted in place (``param.data``), so
    an optimizer built before keeps them; checkpoints load into them in either format. (Tested
in single-process runs; under a distributed wrapper the wrapped module is converted.)

    Use in a config::

        custom_hooks = [dict(type='mmspike.ChannelsLastHook')]
    """

    priority = 'VERY_HIGH'  # before other hooks look at the model

    def before_run(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        model.to(memory_format=torch.channels_last)
