"""Face restorers users already have (CodeFormer, GFPGAN, RestoreFormer in
models/facerestore_models), recognised and built by spandrel."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..files import Kind, ModelFile
from .codeformer import codeformer_forward, face_size

FILE = ModelFile("face restoration model", Kind.FACE_RESTORER)

CODEFORMER = "CodeFormer"
FACE_SIZE = 512
"""What GFPGAN and RestoreFormer take (spandrel builds them at 512 px only)."""


@dataclass
class FaceRestorer:
    network: torch.nn.Module
    architecture: str
    """spandrel's architecture id: "CodeFormer", "GFPGAN", "RestoreFormer"."""

    @property
    def face_size(self) -> int:
        """The side of the aligned faces the network takes: 512 for the published checkpoints."""
        return face_size(self.network) if self.architecture == CODEFORMER else FACE_SIZE

    def __call__(self, faces: torch.Tensor, fidelity: float = 0.5, adain: bool = False) -> torch.Tensor:
        """B x 3 x face_size x face_size in [-1, 1] -> the restored faces, float32 in [-1, 1], on the network's
        device. `fidelity` (w) and `adain` are CodeFormer's, with the released defaults SSDiff
        calls it with; the other architectures take neither."""
        parameter = next(self.network.parameters())
        faces = faces.to(parameter.device, parameter.dtype)
        with torch.no_grad():
            if self.architecture == CODEFORMER:
                output = codeformer_forward(self.network, faces, fidelity, adain)
            else:
                output = self.network(faces)
        return (output[0] if isinstance(output, (tuple, list)) else output).float().clamp(-1, 1)


def build(state_dict: dict[str, torch.Tensor]) -> FaceRestorer:
    """The face restorer spandrel recognises in the weights, float32, in eval mode on the CPU."""
    import spandrel
    try:
        import spandrel_extra_arches
        spandrel_extra_arches.install(ignore_duplicates=True)  # CodeFormer lives there
    except ImportError:
        pass
    try:
        descriptor = spandrel.ModelLoader().load_from_state_dict(state_dict)
    except spandrel.UnsupportedModelError as error:
        raise ValueError(f"not an architecture spandrel knows ({error}); CodeFormer needs "
                         "`pip install spandrel_extra_arches`") from error
    if descriptor.purpose != "FaceSR":
        raise ValueError(f"it is a {descriptor.architecture.name} model ({descriptor.purpose}), not a face restorer")
    return FaceRestorer(descriptor.model.float().eval(), descriptor.architecture.id)
