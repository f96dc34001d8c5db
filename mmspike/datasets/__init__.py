from .digit_canvas import (DigitCanvasCocoDataset, DigitCanvasSegDataset, build_digit_canvas,
                           compose_canvases)
from .digit_events import DigitEventsDataset, build_digit_events, digit_to_events
from .digits import DigitsDataset
from .events import (EventFileError, load_atis_bin, load_events, load_npz_events,
                     save_npz_events, validate_events)
from .hardvs import HARDVS_CLASSES, HARDVSDataset, load_hardvs_classes
from .transforms import *  # noqa: F401,F403

__all__ = [
    'DigitsDataset', 'DigitCanvasCocoDataset', 'DigitCanvasSegDataset', 'DigitEventsDataset',
    'build_digit_canvas', 'compose_canvases', 'build_digit_events', 'digit_to_events',
    'HARDVSDataset', 'HARDVS_CLASSES', 'load_hardvs_classes', 'EventFileError',
    'load_events', 'load_npz_events', 'load_atis_bin', 'save_npz_events', 'validate_events'
]
