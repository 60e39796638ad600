"""Tiny randomly initialised networks of the real architectures, saved as real checkpoints:
the test suite's models, and the main job's plumbing check when no real checkpoint is installed."""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from models.guided_diffusion import FaceUNet, FaceUNetConfig

TINY_FACE_UNET = FaceUNetConfig(model_channels=32, channel_mult=(1, 1, 2), num_res_blocks=(1, 1, 1),
                                attention_levels=(False, False, True))
"""Same class as the FFHQ-512 model, small widths: inputs must be multiples of 4 px."""


def tiny_face_unet(seed: int = 0, config: FaceUNetConfig = TINY_FACE_UNET) -> FaceUNet:
    torch.manual_seed(seed)
    return FaceUNet(config).eval()


def save_face_ddpm(unet: FaceUNet, path: Path) -> Path:
    """Saves as the published file is saved: a .pth state dict whose keys carry 'module.', or a
    .safetensors file without the prefix."""
    state_dict = {key: value.detach().contiguous() for key, value in unet.state_dict().items()}
    if path.suffix == ".safetensors":
        save_file(state_dict, str(path))
    else:
        torch.save({f"module.{key}": value for key, value in state_dict.items()}, path)
    return path


def save_retinaface_mobile(path: Path, seed: int = 0) -> Path:
    """facexlib's RetinaFace-MobileNet-0.25 (0.43 M parameters: the real, already tiny network),
    random weights, saved with the 'module.' prefix of the published files."""
    from facexlib.detection.retinaface import RetinaFace

    torch.manual_seed(seed)
    detector = RetinaFace(network_name="mobile0.25", device=torch.device("cpu"))
    torch.save({f"module.{key}": value for key, value in detector.state_dict().items()}, path)
    return path
