"""What a headless job sets up before ComfyUI starts: the workflow's checkpoints, found in the
model folders or replaced by tiny random networks of the same architecture (a plumbing check,
never a restoration), and an optional step count for every sampler."""
from __future__ import annotations

from pathlib import Path

from models.files import MODEL_FOLDERS

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


def with_stand_ins(prompt: dict, roots: list[Path], models_dir: Path | None, work: Path) -> tuple[Path | None, list[str]]:
    """Points every loader whose file is missing at a tiny random stand-in written under `work`
    (beside links to `models_dir`'s own files). Returns the models folder the server should read
    (`models_dir` when nothing is missing) and the names of the files that were missing."""
    missing = missing_checkpoints(prompt, roots)
    if not missing:
        return models_dir, []
    models_root = work / "models"
    for folder in MODEL_FOLDERS:
        (models_root / folder).mkdir(parents=True, exist_ok=True)
        if models_dir and (models_dir / folder).is_dir():
            for existing in (models_dir / folder).iterdir():
                if not (models_root / folder / existing.name).exists():
                    (models_root / folder / existing.name).symlink_to(existing.resolve())
    names = []
    for node in missing:
        key, folder, stand_in, write = TINY_STAND_INS[node["class_type"]]
        names.append(node["inputs"][key])
        if not (models_root / folder / stand_in).exists():
            write(models_root / folder / stand_in)
        node["inputs"][key] = stand_in
    return models_root, names


def set_steps(prompt: dict, steps: int | None) -> None:
    """Every sampler node of the prompt to `steps` (None: as the workflow has it)."""
    for node in prompt.values():
        if steps and "steps" in node["inputs"]:
            node["inputs"]["steps"] = steps
