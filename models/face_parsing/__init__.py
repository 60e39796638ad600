from .bisenet_resnet import (
    NUM_CLASSES,
    ResNetBiSeNet,
    resnet_bisenet_from_state_dict,
)
from .loading import PARSER_MARKER_KEYS, face_parser_from_state_dict, parser_backend

__all__ = [
    "NUM_CLASSES",
    "ResNetBiSeNet",
    "resnet_bisenet_from_state_dict",
    "PARSER_MARKER_KEYS",
    "face_parser_from_state_dict",
    "parser_backend",
]
