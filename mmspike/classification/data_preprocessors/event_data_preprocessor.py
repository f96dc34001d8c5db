"""Batch event clips time-first for mmspike backbones."""

from mmpretrain.models.utils import ClsDataPreprocessor

from mmspike.registry import MODELS


@MODELS.register_module()
class EventClsDataPreprocessor(ClsDataPreprocessor):
    """:class:`mmpretrain.models.ClsDataPreprocessor` for ``[T, C, H, W]`` event clips.

    mmpretrain stacks the per-sample clips of :class:`mmspike.datasets.PackEventInputs` into
    ``[B, T, C, H, W]``; mmspike backbones take time first, ``[T, B, C, H, W]`` (a 5-D tensor
    with T first cannot be told from one with B first by its shape, so the layout is fixed here,
    once, rather than guessed in every backbone). Normalisation (per channel), padding and batch
    augmentations (Mixup, CutMix: they mix along the batch) all run on ``[B, T, C, H, W]``
    before the swap. 4-D ``[B, C, H, W]`` image batches pass through unchanged.

    Args:
        to_rgb (bool): Must stay False: polarity channels are not BGR (and mmpretrain's
            per-sample check would flip a T=3 time axis). Defaults to False.
        **kwargs: Other arguments of :class:`mmpretrain.models.ClsDataPreprocessor`
            (``mean``, ``std``, ``num_classes``, ``batch_augments``, ...).
    """

    def __init__(self, to_rgb: bool = False, **kwargs) -> None:
        if to_rgb:
            raise ValueError('EventClsDataPreprocessor: to_rgb=True makes no sense for event '
                             'polarity channels')
        super().__init__(to_rgb=False, **kwargs)

    def forward(self, data: dict, training: bool = False) -> dict:
        data = super().forward(data, training)
        inputs = data['inputs']
        if inputs.dim() == 5:
            data['inputs'] = inputs.transpose(0, 1).contiguous()
        elif inputs.dim() != 4:
            raise ValueError('EventClsDataPreprocessor expects event clips [B, T, C, H, W] (or '
                             f'images [B, C, H, W]), got a batch of shape {tuple(inputs.shape)}')
        return data
