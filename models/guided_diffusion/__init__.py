from .unet import FaceUNet, FaceUNetConfig

__all__ = ["FaceUNet", "FaceUNetConfig"]
