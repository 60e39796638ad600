from ..files import Kind, ModelFile
from .revresnet import MARKER_KEYS, RevResNet, RevResNetConfig

FILE = ModelFile("CAP-VSTNet colour-transfer network", Kind.COLOUR_TRANSFER, marker_keys=MARKER_KEYS)
build = RevResNet.from_state_dict

__all__ = ["FILE", "MARKER_KEYS", "RevResNet", "RevResNetConfig", "build"]
