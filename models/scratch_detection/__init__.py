from ..files import SSDIFF_FOLDER, ModelFile
from .unet import MARKER_KEYS, ScratchUNet, ScratchUNetConfig

FILE = ModelFile(
    "scratch detector", (SSDIFF_FOLDER,), "FT_Epoch_latest.pt",
    "Bringing-Old-Photos-Back-to-Life release v1.0, global_checkpoints.zip "
    "(https://github.com/microsoft/Bringing-Old-Photos-Back-to-Life/releases): Global/checkpoints/detection/FT_Epoch_latest.pt",
    marker_keys=MARKER_KEYS)
build = ScratchUNet.from_state_dict

__all__ = ["FILE", "MARKER_KEYS", "ScratchUNet", "ScratchUNetConfig", "build"]
