"""Face restorers users already have (CodeFormer, GFPGAN, RestoreFormer in
models/facerestore_models), recognised and built by spandrel."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..files import FACE_RESTORE_FOLDER, ModelFile

FILE = ModelFile(
    "face restoration model", (FACE_RESTORE_FOLDER,), "codeformer.pth (or GFPGANv1.4.pth, RestoreFormer.pth)",
    "CodeFormer release v0.1.0 (https://github.com/sczhou/CodeFormer/releases); GFPGAN releases "
    "(https://github.com/TencentARC/GFPGAN/releases)")


@dataclass
class FaceRestorer:
    network: torch.nn.Module
    architecture: str
    """spandrel's architecture id: "CodeFormer", "GFPGAN", "RestoreFormer"."""


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
