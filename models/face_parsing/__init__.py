from ..files import Kind, ModelFile
from .bisenet_resnet import (
    NUM_CLASSES,
    ResNetBiSeNet,
    resnet_bisenet_from_state_dict,
)
from .loading import PARSER_MARKER_KEYS, face_parser_from_state_dict, parser_backend

FILE = ModelFile("face parser", Kind.FACE_PARSER, marker_keys=tuple(PARSER_MARKER_KEYS.values()), any_marker=True)
build = face_parser_from_state_dict

__all__ = [
    "FILE",
    "NUM_CLASSES",
    "ResNetBiSeNet",
    "build",
    "resnet_bisenet_from_state_dict",
    "PARSER_MARKER_KEYS",
    "face_parser_from_state_dict",
    "parser_backend",
]
