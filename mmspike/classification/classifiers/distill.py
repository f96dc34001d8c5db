"""An mmpretrain ``ImageClassifier`` that distils a frozen teacher's hard labels into its head."""
from typing import List, Optional

import torch
from mmpretrain.models.classifiers import ImageClassifier
from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS
from mmpretrain.structures import DataSample
from torch import Tensor, nn

from mmspike.engine.checkpoint import load_state_dict_file
from mmspike.registry import MODELS


@MODELS.register_module()
class DistillImageClassifier(ImageClassifier):
    """Image classifier trained with hard distillation from a frozen teacher (DeiT recipe, as the
    E-SpikeFormer large models were: teacher ``caformer_b36_in21ft1k``).

    In ``loss`` the teacher classifies the (augmented) batch and its arg-max is stored as
    ``teacher_label`` in each data sample, which
    :class:`~mmspike.models.heads.SpikeDistillClsHead` learns with its ``fc_kd`` branch. Prediction
    is the student's alone.

    The teacher receives the student's preprocessed (normalised, mixed) inputs, so it must expect
    the same normalisation. It is not a registered submodule: it stays out of ``state_dict``
    (checkpoints hold only the student), out of the optimizer and out of DDP, and it follows the
    input's device.

    Args:
        teacher (dict): Config of an mmpretrain classifier whose ``forward(x, mode='tensor')``
            returns logits, e.g. ``dict(type='TimmClassifier',
            model_name='caformer_b36.sail_in22k_ft_in1k', pretrained=True)`` (needs timm).
        teacher_checkpoint (str, optional): Weights loaded (weights-only, strict) into the teacher.
            Defaults to None.
        **kwargs: :class:`mmpretrain.models.ImageClassifier` arguments (``backbone``, ``neck``,
            ``head``, ``train_cfg``, ``data_preprocessor``, ``init_cfg``).
    """

    def __init__(self, teacher: dict, teacher_checkpoint: Optional[str] = None, **kwargs) -> None:
        super().__init__(**kwargs)
        if not isinstance(teacher, (dict, nn.Module)):
            raise TypeError(f'teacher must be a config dict or a module, got {type(teacher)}')
        model = teacher if isinstance(teacher, nn.Module) else MMPRETRAIN_MODELS.build(teacher)
        if teacher_checkpoint is not None:
            model.load_state_dict(load_state_dict_file(teacher_checkpoint), strict=True)
        model.eval()
        model.requires_grad_(False)
        self._teacher = (model, )  # a tuple hides it from nn.Module registration

    @property
    def teacher(self) -> nn.Module:
        return self._teacher[0]

    @torch.no_grad()
    def teacher_labels(self, inputs: Tensor) -> Tensor:
        """The teacher's arg-max class for each input, ``[B]``."""
        teacher = self.teacher
        param = next(teacher.parameters(), None)
        if param is not None and param.device != inputs.device:
            teacher.to(inputs.device)
        teacher.eval()
        logits = teacher(inputs, mode='tensor')
        if isinstance(logits, (tuple, list)):
            logits = logits[-1]
        if logits.dim() != 2 or logits.shape[0] != inputs.shape[0]:
            raise ValueError(f'the teacher must return [B, num_classes] logits, got '
                             f'{tuple(logits.shape)}')
        return logits.argmax(dim=1)

    def loss(self, inputs: Tensor, data_samples: List[DataSample]) -> dict:
        for sample, label in zip(data_samples, self.teacher_labels(inputs)):
            sample.set_field(label.view(1), 'teacher_label')
        return super().loss(inputs, data_samples)
