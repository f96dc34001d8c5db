"""Helpers of the analysis tools: build a model from an OpenMMLab config, load weights strictly and
feed it preprocessed batches from the config's test dataloader or random images."""
import copy
import os
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn


class DataUnavailableError(RuntimeError):
    """The config's dataloader cannot provide the requested images."""


def load_config(config, cfg_options: Optional[dict] = None):
    """``Config.fromfile`` (custom imports included) with optional overrides; sets the default
    scope (``default_scope`` of the config, else ``'mmpretrain'``) so bare types resolve."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    cfg = config if isinstance(config, Config) else Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope(cfg.get('default_scope', None) or 'mmpretrain')
    return cfg


def build_model(cfg, checkpoint: Optional[str] = None, device: str = 'cpu') -> nn.Module:
    """Build ``cfg.model`` in eval mode and load ``checkpoint`` strictly (weights only).

    Without a checkpoint the model gets its configured initialisation (``init_weights``).

    The checkpoint may be an MMEngine checkpoint (``state_dict``), a ``{'model': ...}`` dict or a
    bare state dict; every key must match the model (``strict=True``).
    """
    from mmengine.registry import MODELS
    import mmspike.models  # noqa: F401  (registers mmspike's modules)
    model = MODELS.build(copy.deepcopy(cfg.model))
    if checkpoint is None:
        if hasattr(model, 'init_weights'):
            _quiet_init_weights(model)
    else:
        from mmspike.engine.checkpoint import load_state_dict_file
        state = load_state_dict_file(checkpoint)
        missing, unexpected = _strict_diff(model, state)
        if missing or unexpected:
            raise ValueError(f'checkpoint {checkpoint!r} does not match the model: missing keys '
                             f'{missing[:10]}{" ..." if len(missing) > 10 else ""}, unexpected '
                             f'keys {unexpected[:10]}{" ..." if len(unexpected) > 10 else ""}')
        model.load_state_dict(state, strict=True)
    return model.to(device).eval()


def _quiet_init_weights(model: nn.Module) -> None:
    """``model.init_weights()`` without MMEngine's per-parameter INFO dump on the terminal."""
    import logging
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)


def calibrate_bn(model: nn.Module, batches: Iterable[Tuple[Tensor, Optional[list], int]]) -> int:
    """Re-estimate every BatchNorm's running statistics on ``batches`` (cumulative average).

    With random weights the default statistics (mean 0, variance 1) let activations die out after
    a few layers, so nothing fires; calibrated statistics give a plausible firing profile for
    profiling a config before it is trained. Returns the number of images used.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m, m.momentum) for m in bns]
    model.eval()  # only BN layers learn statistics; dropout / drop path stay off
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average over the calibration batches
        m.train()
    n = 0
    try:
        with torch.no_grad():
            for inputs, samples, k in batches:
                forward_tensor(model, inputs, samples)
                n += k
    finally:
        for m, momentum in saved:
            m.momentum = momentum
        model.eval()
    return n


def _strict_diff(model: nn.Module, state: dict) -> Tuple[List[str], List[str]]:
    expected = set(model.state_dict())
    return sorted(expected - set(state)), sorted(set(state) - expected)


def parse_shape(shape: Union[str, Sequence[int]]) -> Tuple[int, ...]:
    """``'3,224,224'``, ``'224'`` (3 channels, square) or a sequence -> ``(C, H, W)``."""
    if isinstance(shape, str):
        shape = [int(v) for v in shape.replace('x', ',').split(',') if v.strip()]
    shape = tuple(int(v) for v in shape)
    if len(shape) == 1:
        shape = (3, shape[0], shape[0])
    elif len(shape) == 2:
        shape = (3, ) + shape
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f'input shape must be C,H,W (or H,W or S) of positive ints, got {shape}')
    return shape


def _dummy_data_samples(model: nn.Module, n: int, hw: Tuple[int, int]) -> Optional[list]:
    """Data samples with the meta information mmdet / mmseg models need in ``tensor`` mode."""
    module = type(model).__module__
    meta = dict(img_shape=hw, ori_shape=hw, pad_shape=hw, batch_input_shape=hw,
                scale_factor=(1.0, 1.0))
    if module.startswith('mmdet'):
        from mmdet.structures import DetDataSample
        cls = DetDataSample
    elif module.startswith('mmseg'):
        from mmseg.structures import SegDataSample
        cls = SegDataSample
        meta['padding_size'] = [0, 0, 0, 0]
    else:
        return None
    samples = []
    for i in range(n):
        s = cls()
        s.set_metainfo(dict(meta, img_id=i, img_path=f'random_{i}.png'))
        samples.append(s)
    return samples


def _preprocess(model: nn.Module, data: dict, device: str) -> Tuple[Tensor, Optional[list]]:
    data = model.data_preprocessor(data, False) if hasattr(model, 'data_preprocessor') else data
    inputs, samples = data['inputs'], data.get('data_samples')
    # sparse voxel batches (spconv SparseConvTensor) are built on the model's device already
    return (inputs.to(device) if isinstance(inputs, Tensor) else inputs), samples


def _num_samples(inputs) -> int:
    """Batch size of a tensor batch, an spconv ``SparseConvTensor`` or a list of samples."""
    if isinstance(inputs, Tensor):
        return inputs.shape[0]
    if hasattr(inputs, 'batch_size') and hasattr(inputs, 'indices'):
        return int(inputs.batch_size)
    return len(inputs)


def _take(inputs, start: int, n: int):
    """Samples ``start .. start + n - 1`` of a batch (see :func:`_num_samples`)."""
    if isinstance(inputs, Tensor) or isinstance(inputs, (list, tuple)):
        return inputs[start:start + n]
    keep = (inputs.indices[:, 0] >= start) & (inputs.indices[:, 0] < start + n)
    indices = inputs.indices[keep].clone()
    indices[:, 0] -= start
    return type(inputs)(inputs.features[keep], indices.contiguous(), inputs.spatial_shape, n)


def random_batches(model: nn.Module, shape: Sequence[int], num_images: int, batch_size: int,
                   seed: int = 0, device: str = 'cpu'
                   ) -> Iterator[Tuple[Tensor, Optional[list], int]]:
    """Uniform random ``uint8`` images of ``shape = (C, H, W)`` through the model's data
    preprocessor, ``batch_size`` at a time. Yields ``(inputs, data_samples, n)``."""
    C, H, W = parse_shape(shape)
    g = torch.Generator().manual_seed(seed)
    done = 0
    while done < num_images:
        n = min(batch_size, num_images - done)
        imgs = [torch.randint(0, 256, (C, H, W), generator=g, dtype=torch.uint8) for _ in range(n)]
        data = dict(inputs=imgs, data_samples=_dummy_data_samples(model, n, (H, W)))
        inputs, samples = _preprocess(model, data, device)
        yield inputs, samples, n
        done += n


def dataset_batches(cfg, model: nn.Module, num_images: int, batch_size: Optional[int] = None,
                    split: str = 'test', device: str = 'cpu', skip: int = 0
                    ) -> Iterator[Tuple[Tensor, Optional[list], int]]:
    """``num_images`` images of the config's ``{split}_dataloader`` (no shuffling) after the first
    ``skip``, preprocessed by the model. Yields ``(inputs, data_samples, n)``.

    Raises:
        DataUnavailableError: naming the dataloader when its dataset cannot be built (e.g. no data).
    """
    from mmengine.runner import Runner
    key = f'{split}_dataloader'
    if cfg.get(key) is None:
        raise DataUnavailableError(f'the config has no {key}; use random input instead')
    dl_cfg = copy.deepcopy(cfg[key])
    if batch_size is not None:
        dl_cfg['batch_size'] = batch_size
    dl_cfg['num_workers'] = 0
    dl_cfg.pop('persistent_workers', None)
    dl_cfg['sampler'] = dict(type='DefaultSampler', shuffle=False)
    try:
        loader = Runner.build_dataloader(dl_cfg)
    except Exception as e:
        raise DataUnavailableError(f'cannot build the {key} of the config '
                                   f'({type(e).__name__}: {e}); is the dataset present? Use '
                                   'random input instead') from e
    done, seen = 0, 0
    for data in loader:
        inputs, samples = _preprocess(model, data, device)
        size = _num_samples(inputs)
        start = min(max(skip - seen, 0), size)
        seen += size
        n = min(size - start, num_images - done)
        if n <= 0:
            continue
        if (start, n) != (0, size):
            inputs = _take(inputs, start, n)
            samples = samples[start:start + n] if samples is not None else None
        yield inputs, samples, n
        done += n
        if done >= num_images:
            break
    if done < num_images:
        raise DataUnavailableError(f'the {key} has only {done} images, {num_images} were requested')


def forward_tensor(model: nn.Module, inputs: Tensor, data_samples: Optional[list] = None,
                   mode: str = 'tensor'):
    """Run an OpenMMLab model in ``mode`` (``'tensor'``: raw outputs; ``'predict'``: the inference
    path with post-processing, e.g. a detector's second stage on its proposals); other models are
    called as ``model(inputs)``."""
    from mmengine.model import BaseModel
    if mode not in ('tensor', 'predict'):
        raise ValueError(f"mode must be 'tensor' or 'predict', got {mode!r}")
    if isinstance(model, BaseModel):
        return model(inputs, data_samples, mode=mode)
    return model(inputs)


def flatten_outputs(out) -> List[Tensor]:
    """All tensors of a nested tuple / list / dict output, in a fixed order."""
    if isinstance(out, Tensor):
        return [out]
    if isinstance(out, dict):
        return [t for k in sorted(out) for t in flatten_outputs(out[k])]
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in flatten_outputs(o)]
    return []


def batch_source(cfg, model: nn.Module, args, default_batch_size: int):
    """``batches(num_images, skip=0, seed=args.seed)`` for the analysis tools: random images of
    ``args.random_input`` (C,H,W) or the config's ``args.split`` dataloader."""

    def batches(num_images: int, skip: int = 0, seed: int = args.seed):
        if args.random_input is not None:
            return random_batches(model, args.random_input, num_images,
                                  args.batch_size or default_batch_size, seed=seed,
                                  device=args.device)
        return dataset_batches(cfg, model, num_images, args.batch_size, args.split,
                               device=args.device, skip=skip)

    return batches


def check_tool_args(parser, args) -> None:
    """Checks shared by the analysis tools' command lines (``parser.error`` exits with a message)."""
    if args.num_images < 1:
        parser.error('--num-images must be >= 1')
    if getattr(args, 'batch_size', None) is not None and args.batch_size < 1:
        parser.error('--batch-size must be >= 1')
    if args.checkpoint is not None and not os.path.isfile(args.checkpoint):
        parser.error(f'checkpoint not found: {args.checkpoint}')
