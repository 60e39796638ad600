from ..files import SSDIFF_FOLDER, ModelFile
from .unet import FaceUNet, FaceUNetConfig, build

FILE = ModelFile(
    "guided-diffusion face DDPM checkpoint", (SSDIFF_FOLDER,), "iddpm_ffhq512_ema500000.pth",
    "https://github.com/zsyOAOA/DifFace/releases/download/V1.0/iddpm_ffhq512_ema500000.pth "
    "(or the SSDiff / PGDiff Google Drive links)",
    marker_keys=("time_embed.0.weight", "input_blocks.0.0.weight", "out.2.weight"))

__all__ = ["FILE", "FaceUNet", "FaceUNetConfig", "build"]
