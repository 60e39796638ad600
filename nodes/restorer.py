"""The coarse restoration R: face restorers ComfyUI users already have (CodeFormer, GFPGAN,
RestoreFormer in models/facerestore_models), loaded by spandrel."""
from __future__ import annotations

import functools

import torch
from comfy_api.latest import io

from ..comfy_adapter import device, managed
from ..models import face_restorers
from ..priors.coarse import coarse_restore
from . import boundary
from .loaders import CheckpointLoader
from .types import FaceRestorerType
from .input_checks import checked_inputs


class SSDiffFaceRestorerLoader(CheckpointLoader):
    FILE = face_restorers.FILE

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SSDiffFaceRestorerLoader",
            display_name="SSDiff Face Restorer Loader",
            category="SSDiff/restorer",
            description=("CodeFormer (as SSDiff uses, needs the spandrel_extra_arches package), GFPGAN "
                         "or RestoreFormer from models/facerestore_models, for the coarse restoration. Runs in "
                         "fp32: cast to bf16, spandrel's CodeFormer mixes fp32 tensors into its forward and fails "
                         "(tests/test_precision.py)."),
            inputs=[cls.checkpoint_input()],
            outputs=[FaceRestorerType.Output(display_name="restorer")],
        )

    @classmethod
    @checked_inputs
    def execute(cls, model_name: str) -> io.NodeOutput:
        restorer = cls.load(model_name, face_restorers.build)
        managed.managed(restorer.network)
        return io.NodeOutput(restorer)


class SSDiffCoarseRestore(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SSDiffCoarseRestore",
            display_name="SSDiff Coarse Restore",
            category="SSDiff/restorer",
            description=("The coarse restoration R that SSDiff Sampler keeps the structure of: "
                         "CodeFormer at fidelity w = 0.5 in the paper. Runs on aligned faces, resized to the "
                         "restorer's 512 px."),
            inputs=[FaceRestorerType.Input("restorer", tooltip="from SSDiff Face Restorer Loader or SSDiff Fine-tune "
                                                               "Restorer"),
                    io.Image.Input("image", tooltip="aligned degraded faces (e.g. SSDiff Face Crop's faces)"),
                    io.Float.Input("fidelity", default=0.5, min=0.0, max=1.0, step=0.05,
                                   tooltip="w, for CodeFormer only: 0 favours quality, 1 fidelity to the input"),
                    io.Boolean.Input("adain", default=False, optional=True,
                                     tooltip="CodeFormer only. Off: its released call, as SSDiff makes it. On: "
                                             "the code features take the input's feature statistics (what "
                                             "spandrel's CodeFormer always does), which carries the photo's tone "
                                             "(sepia, fading) into R and so into the restoration")],
            outputs=[io.Image.Output(display_name="coarse_restoration")],
        )

    @classmethod
    @checked_inputs
    def execute(cls, restorer: face_restorers.FaceRestorer, image: torch.Tensor, fidelity: float,
                adain: bool = False) -> io.NodeOutput:
        managed.load(restorer.network, managed.image_bytes(image, 32))
        restored = coarse_restore(functools.partial(restorer, fidelity=fidelity, adain=adain),
                                  boundary.image_to_rgb(image), restorer.face_size, device.check_interrupt)
        return io.NodeOutput(boundary.channels_last(restored))
