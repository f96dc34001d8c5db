"""Small adaptations that let stock MMEngine runners work in settings they do not cover."""
import os

import torch
import torch.distributed as dist
from mmengine.config import Config


def setup_cpu_distributed(cfg: Config) -> None:
    """Make ``--launcher pytorch`` work on machines without a GPU (gloo backend, CPU DDP).

    MMEngine 0.10.7 calls ``torch.cuda.set_device`` before ``init_process_group`` and wraps the
    model in DDP with ``device_ids=[LOCAL_RANK]``; both fail without CUDA. Initialising the gloo group
    here (MMEngine then skips its own init) and passing ``device_ids=None`` fixes both.
    """
    if cfg.get('launcher', 'none') == 'none' or torch.cuda.is_available():
        return
    if cfg.launcher != 'pytorch':
        raise RuntimeError(f'launcher {cfg.launcher!r} needs CUDA; on CPU use --launcher pytorch')
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo', rank=int(os.environ['RANK']),
                                world_size=int(os.environ['WORLD_SIZE']))
    env_cfg = cfg.setdefault('env_cfg', {})
    env_cfg.setdefault('dist_cfg', {})['backend'] = 'gloo'
    wrapper = cfg.get('model_wrapper_cfg') or dict(type='MMDistributedDataParallel')
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
