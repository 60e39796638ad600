from ..files import Kind, ModelFile
from .unet import FaceUNet, FaceUNetConfig, GroupNorm32, Operations, TorchOperations, build

FILE = ModelFile("guided-diffusion face DDPM checkpoint", Kind.FACE_DDPM,
                 marker_keys=("time_embed.0.weight", "input_blocks.0.0.weight", "out.2.weight"))

__all__ = ["FILE", "FaceUNet", "FaceUNetConfig", "GroupNorm32", "Operations", "TorchOperations", "build"]
