"""What a headless job sets up before ComfyUI starts: the workflow's checkpoints, found in the
model folders or replaced (the face detector by MTCNN, which needs no download; the others by tiny
random networks of the same architecture: a plumbing check, never a restoration), and an optional
step count for every sampler."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from comfyui_ssdiff.models import mtcnn
from comfyui_ssdiff.models.files import MODEL_FOLDERS

from .tiny_models import TINY_STAND_INS


def missing_checkpoints(prompt: dict, roots: list[Path]) -> list[dict]:
    """The loader nodes whose file is in none of the model folders."""
    missing = []
    for node in prompt.values():
        if node["class_type"] in TINY_STAND_INS:
            name = node["inputs"][TINY_STAND_INS[node["class_type"]][0]]
            if not any((root / folder / name).exists() for root in roots for folder in MODEL_FOLDERS):
                missing.append(node)
    return missing


@dataclass(frozen=True)
class Replacement:
    """A loader's missing file and what the job runs instead."""
    missing: str
    instead: str
    random: bool
    """A tiny random network (the outputs only check the plumbing), not a real one."""

    def __str__(self) -> str:
        if self.random:
            return f"{self.missing} is missing: using a tiny RANDOM network of the same architecture instead"
        return f"{self.missing} is missing: using {self.instead} instead (real weights)"


def with_stand_ins(prompt: dict, roots: list[Path], models_dir: Path | None,
                   work: Path) -> tuple[Path | None, list[Replacement]]:
    """Points every loader whose file is missing at what can stand in for it: for the face
    detector MTCNN (real weights, shipped with facenet-pytorch) where it is installed, otherwise a
    tiny random stand-in written under `work` (beside links to `models_dir`'s own files). Returns
    the models folder the server should read (`models_dir` when nothing random is needed) and
    what replaced what."""
    replacements, random_stand_ins = [], []
    for node in missing_checkpoints(prompt, roots):
        key = TINY_STAND_INS[node["class_type"]][0]
        if node["class_type"] == "SSDiffFaceDetectorLoader" and mtcnn.available():
            replacements.append(Replacement(node["inputs"][key], mtcnn.CHOICE, random=False))
            node["inputs"][key] = mtcnn.CHOICE
        else:
            random_stand_ins.append(node)
    if not random_stand_ins:
        return models_dir, replacements
    models_root = work / "models"
    for folder in MODEL_FOLDERS:
        (models_root / folder).mkdir(parents=True, exist_ok=True)
        if models_dir and (models_dir / folder).is_dir():
            for existing in (models_dir / folder).iterdir():
                if not (models_root / folder / existing.name).exists():
                    (models_root / folder / existing.name).symlink_to(existing.resolve())
    for node in random_stand_ins:
        key, folder, stand_in, write = TINY_STAND_INS[node["class_type"]]
        replacements.append(Replacement(node["inputs"][key], stand_in, random=True))
        if not (models_root / folder / stand_in).exists():
            write(models_root / folder / stand_in)
        node["inputs"][key] = stand_in
    return models_root, replacements


SHIPPED_MASK_SUFFIX = "_scratches.png"
"""A photo's own scratch mask shipped beside it: <photo stem>_scratches.png (the bundled sample's)."""


def with_shipped_scratch_masks(prompt: dict, replacements: list[Replacement], inputs: list[Path]) -> list[str]:
    """Where the scratch detector is a random stand-in, a whole photo's Scratch Mask is replaced by
    the photo's own shipped mask (LoadImageMask of <stem>_scratches.png), when there is one: the
    damage outside the faces is then filled where it really is, with no download. Returns what was
    replaced, in words."""
    if not any(replacement.random and replacement.missing == "FT_Epoch_latest.pt" for replacement in replacements):
        return []
    names, said = {path.name for path in inputs}, []
    for key, node in list(prompt.items()):
        if node["class_type"] != "SSDiffScratchMask" or not isinstance(node["inputs"].get("image"), list):
            continue
        source = prompt[node["inputs"]["image"][0]]
        if source["class_type"] != "LoadImage":
            continue
        mask = Path(source["inputs"]["image"]).stem + SHIPPED_MASK_SUFFIX
        if mask in names:
            prompt[key] = {"class_type": "LoadImageMask", "_meta": {"title": f"{mask} (shipped)"},
                           "inputs": {"image": mask, "channel": "red"}}
            said.append(f"FT_Epoch_latest.pt is missing: the whole photo's damage is filled where its own shipped "
                        f"scratch mask {mask} marks it (no download)")
    return said


def set_steps(prompt: dict, steps: int | None) -> None:
    """Every sampler node of the prompt to `steps` (None: as the workflow has it)."""
    for node in prompt.values():
        if steps and "steps" in node["inputs"]:
            node["inputs"]["steps"] = steps
