from ..files import FACE_DETECTION_FOLDER, SSDIFF_FOLDER, ModelFile
from .bisenet_resnet import (
    NUM_CLASSES,
    ResNetBiSeNet,
    resnet_bisenet_from_state_dict,
)
from .loading import PARSER_MARKER_KEYS, face_parser_from_state_dict, parser_backend

FILE = ModelFile(
    "face parser", (FACE_DETECTION_FOLDER, SSDIFF_FOLDER),
    "parsing_parsenet.pth, parsing_bisenet.pth (models/facedetection) or resnet34.pt (models/ssdiff)",
    "facexlib releases v0.2.2 (parsing_parsenet.pth) and v0.2.0 (parsing_bisenet.pth) at "
    "https://github.com/xinntao/facexlib/releases; resnet34.pt from https://github.com/yakhyo/face-parsing/releases "
    "(tag 'weights', formerly v0.0.1) or the SSDiff Google Drive")
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
