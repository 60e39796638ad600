"""The whole photo in colour: DDColor (models/ddcolor, through spandrel_extra_arches) on the
photo's lightness, its colour combined with the photo's own full-resolution lightness
(priors/colourise.py)."""
from __future__ import annotations

import functools

import torch
from comfy_api.latest import io

from ..comfy_adapter import device, managed, progress
from ..models import ddcolor
from ..priors.colourise import colourise
from . import boundary
from .input_checks import checked_inputs
from .loaders import CheckpointLoader, in_precision, precision_input, precision_refusal
from .types import ColouriserType


COLOURISE_WORKING_FACTOR = 6
"""The full-resolution colour maths (linear RGB, luminance, the enlarged a*b*, the result), in
multiples of the image's fp32 bytes: an estimate."""


PRECISIONS = ("fp32", "bf16")
PRECISION_WHY = "spandrel's descriptor of the architecture marks fp16 unsupported"


class SSDiffColouriserLoader(CheckpointLoader):
    FILE = ddcolor.FILE

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SSDiffColouriserLoader",
            display_name="SSDiff Colouriser Loader (DDColor)",
            category="SSDiff/colour",
            description=("DDColor, the colourisation network (ddcolor_modelscope.pth and the other released files, "
                         "in models/ddcolor), for SSDiff Colourise. Read without running pickled code; a file of "
                         "another architecture (an upscaler, LaMa) is refused by name."),
            inputs=[cls.checkpoint_input(),
                    io.Int.Input("input_size", default=ddcolor.DEFAULT_INPUT_SIZE, min=ddcolor.MIN_INPUT_SIZE,
                                 max=ddcolor.MAX_INPUT_SIZE, step=ddcolor.INPUT_MULTIPLE,
                                 tooltip="the square side the network sees the photo at (the released files: "
                                         "512); the colour comes back at the photo's own size"),
                    precision_input(PRECISIONS, PRECISION_WHY)],
            outputs=[ColouriserType.Output(display_name="colouriser")],
        )

    @classmethod
    def validate_inputs(cls, model_name: str | None = None, precision: str | None = None) -> bool | str:
        return precision_refusal(precision, PRECISIONS, "DDColor", PRECISION_WHY) or cls.validate_checkpoint(model_name)

    @classmethod
    @checked_inputs
    def execute(cls, model_name: str, input_size: int, precision: str = "fp32") -> io.NodeOutput:
        network = cls.load(model_name, functools.partial(ddcolor.build, input_size=input_size))
        return io.NodeOutput(managed.managed(in_precision(network, precision, PRECISIONS, "DDColor", PRECISION_WHY)))


class SSDiffColourise(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SSDiffColourise",
            display_name="SSDiff Colourise (DDColor)",
            category="SSDiff/colour",
            description=("The whole photo in colour. DDColor sees the photo's lightness at its own size; the colour "
                         "it predicts (CIELAB a*, b*) is brought back to the photo's full resolution and combined "
                         "with the photo's own lightness, so no detail is lost: the result's lightness equals the "
                         "input's. A photo already in colour gets new colour (only its lightness is read). Any "
                         "size, batches, grayscale and RGBA (alpha kept)."),
            inputs=[ColouriserType.Input("colouriser", tooltip="from SSDiff Colouriser Loader"),
                    io.Image.Input("image", tooltip="the whole photos (grayscale, sepia, faded or in colour)")],
            outputs=[io.Image.Output(display_name="image")],
        )

    @classmethod
    @checked_inputs
    def execute(cls, colouriser: torch.nn.Module, image: torch.Tensor) -> io.NodeOutput:
        managed.load(colouriser, managed.image_bytes(image, COLOURISE_WORKING_FACTOR))
        coloured = colourise(colouriser, boundary.channels_first(image).float(),
                             check_interrupt=progress.item_reporter(image.shape[0]))
        return io.NodeOutput(boundary.channels_last(coloured))
