"""ComfyUI node classes: thin adapters over ssdiff_core."""
from __future__ import annotations

from comfy_api.latest import ComfyExtension, io

from .colour import SSDiffColourTransfer, SSDiffColourTransferLoader
from .face_diffusion import SSDiffFaceDiffusionLoader, SSDiffUnconditional
from .fine_tune import SSDiffFineTuneRestorer, SSDiffPerceptualLossLoader
from .identity import SSDiffFaceRecognitionLoader, SSDiffIdentityAngle
from .iterate import SSDiffIterate
from .fill_damage import SSDiffFillDamage, SSDiffInpaintModelLoader
from .global_restoration import SSDiffGlobalRestoration, SSDiffGlobalRestorationLoader
from .colourise import SSDiffColourise, SSDiffColouriserLoader
from .faces import SSDiffFaceCrop, SSDiffFaceDetectorLoader, SSDiffFacePaste, SSDiffFaceRecrop
from .parsing import SSDiffFaceParse, SSDiffFaceParserLoader, SSDiffLabelMapToParsing
from .pseudo_reference import SSDiffPseudoReference, SSDiffPseudoReferenceSampler
from .pseudo_targets import SSDiffPseudoTargetSampler, SSDiffPseudoTargets
from .restorer import SSDiffCoarseRestore, SSDiffFaceRestorerLoader
from .scratch import SSDiffScratchDetectorLoader, SSDiffScratchMask
from .selective import SSDiffSampler, SSDiffSelectiveSampler

NODES: list[type[io.ComfyNode]] = [
    SSDiffFaceDiffusionLoader,
    SSDiffUnconditional,
    SSDiffPseudoReference,
    SSDiffSampler,
    SSDiffPseudoReferenceSampler,
    SSDiffSelectiveSampler,
    SSDiffLabelMapToParsing,
    SSDiffFaceParserLoader,
    SSDiffFaceParse,
    SSDiffFaceDetectorLoader,
    SSDiffFaceCrop,
    SSDiffFacePaste,
    SSDiffFaceRecrop,
    SSDiffScratchDetectorLoader,
    SSDiffScratchMask,
    SSDiffFaceRestorerLoader,
    SSDiffCoarseRestore,
    SSDiffColourTransferLoader,
    SSDiffColourTransfer,
    SSDiffPseudoTargets,
    SSDiffPseudoTargetSampler,
    SSDiffFineTuneRestorer,
    SSDiffPerceptualLossLoader,
    SSDiffIterate,
    SSDiffFaceRecognitionLoader,
    SSDiffIdentityAngle,
    SSDiffInpaintModelLoader,
    SSDiffFillDamage,
    SSDiffGlobalRestorationLoader,
    SSDiffGlobalRestoration,
    SSDiffColouriserLoader,
    SSDiffColourise,
]


class SSDiffExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return NODES
