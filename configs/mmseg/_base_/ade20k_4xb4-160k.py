# Everything of the ADE20K 512x512 configs but the model: stock mmseg 1.2 ADE20K data pipeline,
# ADE20KDataset and IoUMetric, mmseg's runtime, the E-SpikeFormer 160k-iteration AdamW recipe
# (schedules/spike-adamw_160k.py) with its batch of 16 = 4 GPUs x 4 images. A config adds a model
# base (models/) and sets the data preprocessor's size to the 512x512 crop.
_base_ = [
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    './schedules/spike-adamw_160k.py',
]
custom_imports = dict(imports=['mmspike.segmentation'], allow_failed_imports=False)
default_scope = 'mmseg'

train_dataloader = dict(batch_size=4)
