"""LaMa (big-lama) for filling damage: the TorchScript archive users already have, read without
running it, built as spandrel's LaMa."""
from .loading import (FILE, GENERATOR_PREFIXES, MARKER_KEYS, build, load, read_state_dict,
                      spandrel_state_dict)
from ..torchscript_archives import is_torchscript

__all__ = ["FILE", "GENERATOR_PREFIXES", "MARKER_KEYS", "build", "is_torchscript", "load",
           "read_state_dict", "spandrel_state_dict"]
