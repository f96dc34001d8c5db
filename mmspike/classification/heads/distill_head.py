"""Classification head with a distillation branch (E-SpikeFormer large family, Meta-SpikeFormer)."""
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from mmpretrain.models.heads import ClsHead
from mmpretrain.structures import DataSample
from torch import Tensor, nn

from mmspike.registry import MODELS
from mmspike.models.neurons import build_neuron


@MODELS.register_module()
class SpikeDistillClsHead(ClsHead):
    """Two linear classifiers on the same pooled features, DeiT-style hard distillation.

    ``fc`` learns the ground truth with the configured loss, ``fc_kd`` learns the hard labels of
    a teacher (cross-entropy on ``data_sample.teacher_label``, set by
    :class:`~mmspike.models.classifiers.DistillImageClassifier`); samples without a teacher label
    make ``fc_kd`` learn the ground truth too. At inference the two logits are averaged.

    Inputs of the two classifiers:

    * ``kd_neuron=None``: both read the neck's output; after a
      :class:`~mmspike.models.necks.SpikeGlobalAveragePooling` with a neuron both read spikes
      (the all-spiking head).
    * ``kd_neuron=dict(...)``: ``fc`` reads the real-valued pooled features and ``fc_kd`` reads
      ``kd_neuron(features)``, as upstream's E-SpikeFormer large family (``head`` on the pooled
      membrane, ``head_kd`` on its spikes; eval output ``(head + head_kd) / 2``). Use a pooling
      neck without a neuron. The neuron fires on the pooled features averaged over T, which is
      upstream's computation for T = 1 (all released models).

    Args:
        num_classes (int): Number of classes.
        in_channels (int): Input feature channels.
        distill_weight (float): Weight of the distillation loss; the classification loss gets
            ``1 - distill_weight``. Defaults to 0.5.
        kd_neuron (dict, optional): Neuron between the features and ``fc_kd`` only (see above).
            Defaults to None.
        loss (dict): Loss of ``fc`` (and of ``fc_kd`` without teacher labels).
            Defaults to ``dict(type='CrossEntropyLoss', loss_weight=1.0)``.
        init_cfg (dict, optional): Defaults to truncated-normal Linear weights (std 0.02).
        **kwargs: Other :class:`mmpretrain.models.heads.ClsHead` arguments.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 distill_weight: float = 0.5,
                 kd_neuron: Optional[dict] = None,
                 init_cfg: Optional[dict] = dict(type='TruncNormal', layer='Linear', std=0.02,
                                                 bias=0.0),
                 **kwargs) -> None:
        super().__init__(init_cfg=init_cfg, **kwargs)
        if num_classes <= 0:
            raise ValueError(f'num_classes={num_classes} must be a positive integer')
        if not 0.0 <= distill_weight <= 1.0:
            raise ValueError(f'distill_weight must be in [0, 1], got {distill_weight}')
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.distill_weight = float(distill_weight)
        self.fc = nn.Linear(in_channels, num_classes)
        self.fc_kd = nn.Linear(in_channels, num_classes)
        self.kd_neuron = build_neuron(kd_neuron) if kd_neuron is not None else None

    def pre_logits(self, feats: Tuple[Tensor]) -> Tensor:
        x = feats[-1]
        if x.dim() != 2 or x.shape[1] != self.in_channels:
            raise ValueError(f'{type(self).__name__} expects pooled [B, {self.in_channels}] '
                             f'features, got shape {tuple(x.shape)}')
        return x

    def forward_both(self, feats: Tuple[Tensor]) -> Tuple[Tensor, Tensor]:
        """The logits of ``fc`` and ``fc_kd``."""
        x = self.pre_logits(feats)
        if self.kd_neuron is None:
            return self.fc(x), self.fc_kd(x)
        return self.fc(x), self.fc_kd(self.kd_neuron(x.unsqueeze(0))[0])

    def forward(self, feats: Tuple[Tensor]) -> Tensor:
        """Inference logits: the mean of the two classifiers."""
        cls_score, kd_score = self.forward_both(feats)
        return (cls_score + kd_score) / 2

    def loss(self, feats: Tuple[Tensor], data_samples: List[DataSample], **kwargs) -> dict:
        cls_score, kd_score = self.forward_both(feats)
        losses = self._get_loss(cls_score, data_samples, **kwargs)
        w = self.distill_weight
        if all('teacher_label' in ds for ds in data_samples):
            teacher = torch.cat([ds.teacher_label for ds in data_samples]).to(kd_score.device)
            loss_kd = F.cross_entropy(kd_score, teacher)
        else:
            loss_kd = self._get_loss(kd_score, data_samples, **kwargs)['loss']
        return dict(loss_cls=(1.0 - w) * losses.pop('loss'), loss_distill=w * loss_kd, **losses)
