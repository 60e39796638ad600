"""The coarse restoration R: face restorers ComfyUI users already have (CodeFormer, GFPGAN,
RestoreFormer in models/facerestore_models), loaded by spandrel."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from comfy_api.latest import io

from ..ssdiff_core import host, images
from ..ssdiff_core.coarse import FIDELITY_ARCHITECTURES, coarse_restore
from .loading import checkpoint_input, validate_checkpoint

FaceRestorer = io.Custom("SSDIFF_FACE_RESTORER")


@dataclass
class LoadedRestorer:
    network: torch.nn.Module
    architecture: str


def _spandrel_descriptor(state_dict: dict[str, torch.Tensor]):
    import spandrel
    try:
        import spandrel_extra_arches
        spandrel_extra_arches.install(ignore_duplicates=True)  # CodeFormer lives there
    except ImportError:
        pass
    try:
        return spandrel.ModelLoader().load_from_state_dict(state_dict)
    except spandrel.UnsupportedModelError as error:
        raise ValueError(f"not an architecture spandrel knows ({error}); CodeFormer needs "
                         "`pip install spandrel_extra_arches`") from error


class SSDiffFaceRestorerLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SSDiffFaceRestorerLoader",
            display_name="SSDiff Face Restorer Loader",
            category="SSDiff/restorer",
            description=("CodeFormer (as SSDiff uses, needs the spandrel_extra_arches package), GFPGAN "
                         "or RestoreFormer from models/facerestore_models, for the coarse restoration."),
            inputs=[checkpoint_input(host.FACE_RESTORER)],
            outputs=[FaceRestorer.Output(display_name="restorer")],
        )

    @classmethod
    def validate_inputs(cls, model_name: str) -> bool | str:
        return validate_checkpoint(host.FACE_RESTORER, model_name)

    @classmethod
    def execute(cls, model_name: str) -> io.NodeOutput:
        kind = host.FACE_RESTORER
        descriptor = host.load_checkpoint(kind, model_name, _spandrel_descriptor)
        if descriptor.purpose != "FaceSR":
            raise host.CheckpointError(f"'{model_name}' is a {descriptor.architecture.name} model "
                                       f"({descriptor.purpose}), not a face restorer. Expected {kind.expected}")
        network = descriptor.model.float().eval().to(host.compute_device())
        return io.NodeOutput(LoadedRestorer(network, descriptor.architecture.id))


class SSDiffCoarseRestore(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SSDiffCoarseRestore",
            display_name="SSDiff Coarse Restore",
            category="SSDiff/restorer",
            description=("The coarse restoration R that SSDiff Sampler keeps the structure of: "
                         "CodeFormer at fidelity w = 0.5 in the paper. Runs on aligned faces at 512 px."),
            inputs=[FaceRestorer.Input("restorer"), io.Image.Input("image"),
                    io.Float.Input("fidelity", default=0.5, min=0.0, max=1.0, step=0.05,
                                   tooltip=f"w, for {', '.join(FIDELITY_ARCHITECTURES)} only: 0 favours "
                                           "quality, 1 fidelity to the input")],
            outputs=[io.Image.Output(display_name="coarse_restoration")],
        )

    @classmethod
    def execute(cls, restorer: LoadedRestorer, image: torch.Tensor, fidelity: float) -> io.NodeOutput:
        rgb = images.rgb_channels(image)
        restored = coarse_restore(restorer.network, restorer.architecture, rgb.movedim(-1, 1).float(),
                                  fidelity, host.check_interrupt)
        return io.NodeOutput(restored.movedim(1, -1).contiguous())
