from ..files import Kind, ModelFile
from .unet import MARKER_KEYS, ScratchUNet, ScratchUNetConfig

FILE = ModelFile("scratch detector", Kind.SCRATCH_DETECTOR, marker_keys=MARKER_KEYS)
build = ScratchUNet.from_state_dict

__all__ = ["FILE", "MARKER_KEYS", "ScratchUNet", "ScratchUNetConfig", "build"]
