from .bisenet_resnet import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    NUM_CLASSES,
    ResNetBiSeNet,
    normalise_for_parsing,
    resnet_bisenet_from_state_dict,
)
from .loading import PARSER_MARKER_KEYS, face_parser_from_state_dict, parser_backend

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "NUM_CLASSES",
    "ResNetBiSeNet",
    "normalise_for_parsing",
    "resnet_bisenet_from_state_dict",
    "PARSER_MARKER_KEYS",
    "face_parser_from_state_dict",
    "parser_backend",
]
