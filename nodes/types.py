"""The pack's own wire types, one place for all, each named <what it carries>Type."""
from __future__ import annotations

from comfy_api.latest import io

ParsingType = io.Custom("SSDIFF_PARSING")
"""A face parsing: B x H x W label map in CelebAMask-HQ ids (0 background ... 18 hat)."""
FaceParserType = io.Custom("SSDIFF_FACE_PARSER")
"""priors.parsing.FaceParser: a parser network and its label order."""
FaceDetectorType = io.Custom("SSDIFF_FACE_DETECTOR")
"""facexlib's RetinaFace, loaded (models/retinaface)."""
FaceInfoType = io.Custom("SSDIFF_FACE_INFO")
"""priors.alignment.FaceInfo: where each crop of Face Crop came from, for Face Paste."""
ScratchDetectorType = io.Custom("SSDIFF_SCRATCH_DETECTOR")
"""models.scratch_detection.ScratchUNet, loaded."""
FaceRestorerType = io.Custom("SSDIFF_FACE_RESTORER")
"""models.face_restorers.FaceRestorer: a spandrel network and its architecture."""
ColourTransferType = io.Custom("SSDIFF_COLOUR_TRANSFER")
"""A function (content, style, region) -> recoloured content; unconnected = the built-in
masked mean/std transfer."""
FaceRecognitionType = io.Custom("SSDIFF_FACE_RECOGNITION")
"""models.face_recognition's ArcFace backbone, loaded: 112 px faces -> unit embeddings."""
PerceptualLossType = io.Custom("SSDIFF_PERCEPTUAL_LOSS")
"""training.losses.PerceptualLoss: LPIPS-VGG and its weight beside the pixel loss."""
InpaintModelType = io.Custom("SSDIFF_INPAINT_MODEL")
"""models.lama: spandrel's LaMa network, loaded."""
GlobalRestorationType = io.Custom("SSDIFF_GLOBAL_RESTORATION")
"""models.bopbtl_global.GlobalRestorationNetworks: VAE_A's encoder, a mapping, VAE_B's decoder."""
ColouriserType = io.Custom("SSDIFF_COLOURISER")
"""models.ddcolor: spandrel's DDColor network, loaded, with the size it runs at (input_size)."""
