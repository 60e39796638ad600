"""ComfyUI node classes: thin adapters over ssdiff_core."""
from __future__ import annotations

from comfy_api.latest import ComfyExtension, io

from .face_diffusion import SSDiffFaceDiffusionLoader, SSDiffUnconditional
from .faces import SSDiffFaceCrop, SSDiffFaceDetectorLoader, SSDiffFacePaste
from .parsing import SSDiffLabelMapToParsing
from .pseudo_reference import SSDiffPseudoReference, SSDiffPseudoReferenceSampler
from .selective import SSDiffSampler, SSDiffSelectiveSampler

NODES: list[type[io.ComfyNode]] = [
    SSDiffFaceDiffusionLoader,
    SSDiffUnconditional,
    SSDiffPseudoReference,
    SSDiffSampler,
    SSDiffPseudoReferenceSampler,
    SSDiffSelectiveSampler,
    SSDiffLabelMapToParsing,
    SSDiffFaceDetectorLoader,
    SSDiffFaceCrop,
    SSDiffFacePaste,
]


class SSDiffExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return NODES
