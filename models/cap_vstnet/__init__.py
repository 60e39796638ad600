from ..files import SSDIFF_FOLDER, ModelFile
from .revresnet import MARKER_KEYS, RevResNet, RevResNetConfig

FILE = ModelFile(
    "CAP-VSTNet colour-transfer network", (SSDIFF_FOLDER,), "photo_image.pt",
    "CAP-VSTNet (https://github.com/linfengWen98/CAP-VSTNet, checkpoints on its Google Drive) or "
    "the SSDiff repository's CAP_VSTNet/checkpoints/photo_image.pt",
    marker_keys=MARKER_KEYS)
build = RevResNet.from_state_dict

__all__ = ["FILE", "MARKER_KEYS", "RevResNet", "RevResNetConfig", "build"]
