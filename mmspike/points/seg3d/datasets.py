"""mmdet3d's SemanticKITTI dataset with plain-dict meta information."""
from mmdet3d.datasets import SemanticKittiDataset

from mmspike.registry import DATASETS


def _plain(obj):
    """Config dicts (``ConfigDict``) and their nested values as builtin dicts and lists."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain(v) for v in obj)
    return obj


@DATASETS.register_module()
class SemanticKittiSegDataset(SemanticKittiDataset):
    """``SemanticKittiDataset`` whose ``metainfo`` is a plain ``dict``.

    A config's ``metainfo=dict(...)`` arrives as an ``mmengine.config.ConfigDict``; mmdet3d adds its
    label maps to it in place, the runner writes it into every checkpoint's ``dataset_meta``, and
    mmspike loads checkpoints weights-only, which accepts plain data but no ``ConfigDict``. Same
    arguments and behaviour as mmdet3d's class otherwise.
    """

    def __init__(self, metainfo=None, **kwargs) -> None:
        super().__init__(metainfo=_plain(metainfo) if metainfo is not None else None, **kwargs)
