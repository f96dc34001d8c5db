from .digit_canvas import DigitCanvasCocoDataset

__all__ = ['DigitCanvasCocoDataset']
