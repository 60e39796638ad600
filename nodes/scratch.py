"""Scratch and breakage masks with the detector of "Bringing Old Photos Back to Life"."""
from __future__ import annotations

import torch
from comfy_api.latest import io

from ..comfy_adapter import device, managed
from ..models import scratch_detection
from ..priors.scratch import RESIZE_MODES, detect_scratch_probability, scratch_mask, working_bytes
from . import boundary
from .loaders import CheckpointLoader
from .types import ScratchDetectorType
from .input_checks import checked_inputs


class SSDiffScratchDetectorLoader(CheckpointLoader):
    FILE = scratch_detection.FILE

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SSDiffScratchDetectorLoader",
            display_name="SSDiff Scratch Detector Loader",
            category="SSDiff/scratches",
            description="The scratch-detection UNet of Bringing Old Photos Back to Life (its "
                        "published FT_Epoch_latest.pt loads unchanged).",
            inputs=[cls.checkpoint_input()],
            outputs=[ScratchDetectorType.Output(display_name="detector")],
        )

    @classmethod
    @checked_inputs
    def execute(cls, model_name: str) -> io.NodeOutput:
        return io.NodeOutput(managed.managed(cls.load(model_name, scratch_detection.build)))


class SSDiffScratchMask(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SSDiffScratchMask",
            display_name="SSDiff Scratch Mask",
            category="SSDiff/scratches",
            description=("Detects scratches and breakage (white = damaged) as the original does "
                         "(grayscale, ~256 px short side, threshold 0.4), then grows the mask and "
                         "adds or erases hand-painted strokes. Any size; the mask comes back at the "
                         "image's size."),
            inputs=[
                ScratchDetectorType.Input("detector", tooltip="from SSDiff Scratch Detector Loader"),
                io.Image.Input("image", tooltip="the photos or faces to search for scratches (any size)"),
                io.Float.Input("threshold", default=0.4, min=0.0, max=1.0, step=0.01,
                               tooltip="pixels whose scratch probability is at least this are marked; the "
                                       "original uses 0.4"),
                io.Int.Input("dilation", default=0, min=0, max=64, tooltip="grow the mask by this many pixels"),
                io.Combo.Input("resize_mode", options=list(RESIZE_MODES), default="full_size",
                               tooltip="the original's working size: sides rounded to multiples of 16, "
                                       "or short side 256"),
                io.Mask.Input("add_mask", optional=True, tooltip="painted strokes to add to the mask"),
                io.Mask.Input("erase_mask", optional=True, tooltip="painted strokes to remove from the mask"),
            ],
            outputs=[io.Mask.Output(display_name="mask"), io.Mask.Output(display_name="probability")],
        )

    @classmethod
    @checked_inputs
    def execute(cls, detector, image: torch.Tensor, threshold: float, dilation: int, resize_mode: str,
                add_mask: torch.Tensor | None = None, erase_mask: torch.Tensor | None = None) -> io.NodeOutput:
        # The UNet sees every photo at a 256 px short side, one at a time: its memory does not grow
        # with the photo, so there is nothing to tile.
        managed.load(detector, working_bytes(image.shape[1], image.shape[2], resize_mode))
        probability = detect_scratch_probability(detector, boundary.image_to_rgb(image), resize_mode,
                                                 device.check_interrupt)
        mask = scratch_mask(probability, threshold, dilation, add_mask, erase_mask)
        return io.NodeOutput(mask[:, 0], probability[:, 0])
