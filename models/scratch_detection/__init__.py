from .unet import ScratchUNet, ScratchUNetConfig

__all__ = ["ScratchUNet", "ScratchUNetConfig"]
