from .digit_canvas import DigitCanvasSegDataset

__all__ = ['DigitCanvasSegDataset']
