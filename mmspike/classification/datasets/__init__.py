from .cifar10_dvs import CIFAR10_DVS_CLASSES, CIFAR10DVSDataset
from .digit_events import DigitEventsDataset
from .digits import DigitsDataset
from .dvs_gesture import DVS_GESTURE_CLASSES, DVSGestureDataset, read_gesture_labels
from .hardvs import HARDVS_CLASSES, HARDVSDataset, load_hardvs_classes

__all__ = ['DigitsDataset', 'DigitEventsDataset', 'HARDVSDataset', 'HARDVS_CLASSES',
           'load_hardvs_classes', 'CIFAR10DVSDataset', 'CIFAR10_DVS_CLASSES', 'DVSGestureDataset',
           'DVS_GESTURE_CLASSES', 'read_gesture_labels']
