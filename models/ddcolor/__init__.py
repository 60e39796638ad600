"""DDColor (Kang et al., ICCV 2023) for colourising whole photos: the released .pth files users
have, built as spandrel_extra_arches' DDColor; the colourising itself is priors/colourise.py."""
from .loading import (ARCHITECTURE, DEFAULT_INPUT_SIZE, FILE, INPUT_MULTIPLE, MARKER_KEYS, MAX_INPUT_SIZE,
                      MIN_INPUT_SIZE, build, check_input_size, describe, input_size_of)

__all__ = ["ARCHITECTURE", "DEFAULT_INPUT_SIZE", "FILE", "INPUT_MULTIPLE", "MARKER_KEYS", "MAX_INPUT_SIZE",
           "MIN_INPUT_SIZE", "build", "check_input_size", "describe", "input_size_of"]
