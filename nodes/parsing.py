"""Face parsings from label-map images, for SSDiff Sampler."""
from __future__ import annotations

import torch
from comfy_api.latest import io

from ..ssdiff_core.regions import CELEBAMASK_HQ_LABELS
from .guidance_inputs import Parsing


class SSDiffLabelMapToParsing(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SSDiffLabelMapToParsing",
            display_name="SSDiff Label Map to Parsing",
            category="SSDiff/parsing",
            description=("Reads a face-parsing label map saved as a grayscale PNG whose pixel value "
                         "is the CelebAMask-HQ class id (0 background, 1 skin, ... 17 hair, 18 hat), "
                         "as face-parsing tools save them."),
            inputs=[io.Image.Input("label_map")],
            outputs=[Parsing.Output(display_name="parsing")],
        )

    @classmethod
    def execute(cls, label_map: torch.Tensor) -> io.NodeOutput:
        labels = torch.round(label_map[..., 0].float() * 255).long()
        largest = int(labels.max()) if labels.numel() else 0
        if largest >= len(CELEBAMASK_HQ_LABELS):
            raise ValueError(f"label_map holds value {largest}, but CelebAMask-HQ ids run from 0 to "
                             f"{len(CELEBAMASK_HQ_LABELS) - 1}: load the raw label PNG, not a "
                             "colour-coded preview")
        return io.NodeOutput(labels)
