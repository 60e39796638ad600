"""Images a node reads from a folder the user names: only inside ComfyUI's input folder (or its
output or temp folder, annotated as ComfyUI annotates file names: "pairs [output]"), as ComfyUI's
own nodes read. Absolute paths, '..' and links that lead out are refused alike, with a message
that tells nothing about what exists elsewhere: a prompt may come from anyone who can reach a
ComfyUI started with --listen."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from ..priors.arrays import image_tensor

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
ANNOTATIONS = ("input", "output", "temp")
"""ComfyUI's names for its folders, written after a file name in brackets ("a.png [output]")."""


@dataclass(frozen=True)
class UserFolder:
    """A folder inside one of ComfyUI's folders: `path` (resolved), `root` (that ComfyUI folder,
    resolved), and `text`, the relative name the user gave, for messages."""
    path: Path
    root: Path
    text: str
    where: str
    """"ComfyUI's input folder", for messages."""

    def inside(self, path: Path) -> bool:
        return path.resolve().is_relative_to(self.root)


def _comfy_folder(annotation: str) -> str:
    import folder_paths

    return {"input": folder_paths.get_input_directory, "output": folder_paths.get_output_directory,
            "temp": folder_paths.get_temp_directory}[annotation]()


def input_folder(path_text: str, input_name: str) -> UserFolder:
    """The folder `path_text` names inside ComfyUI's input folder ("pairs", "archive/pairs"), or
    inside its output or temp folder with ComfyUI's annotation ("pairs [output]")."""
    text, annotation = path_text.strip(), "input"
    match = re.fullmatch(rf"(.*?)\s*\[({'|'.join(ANNOTATIONS)})\]", text)
    if match:
        text, annotation = match.group(1), match.group(2)
    where = f"ComfyUI's {annotation} folder"
    refusal = ValueError(
        f"{input_name}: '{path_text.strip()}' is not a folder name inside {where}: give the folder's name relative to "
        f"it (e.g. 'my_pairs', or 'my_pairs [output]' for one in the output folder). Absolute paths, '..', '~' and "
        f"links that lead out of ComfyUI's folders are refused; copy or move the folder into {where}")
    parts = text.replace("\\", "/").split("/")
    if not text or text.startswith(("/", "\\", "~")) or re.match(r"[A-Za-z]:", text) or ".." in parts:
        raise refusal
    root = Path(_comfy_folder(annotation)).resolve()
    folder = (root / text).resolve()
    if not folder.is_relative_to(root):
        raise refusal
    if not folder.is_dir():
        raise ValueError(f"{input_name}: no folder '{text}' in {where}; put the folder there, or give the name of "
                         f"one that is")
    return UserFolder(folder, root, text, where)


def image_names(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file())


def read_rgb(path: Path) -> torch.Tensor:
    """1 x 3 x H x W RGB in [0, 1]; EXIF orientation applied, grey and RGBA made RGB."""
    with Image.open(path) as picture:
        rgb = ImageOps.exif_transpose(picture).convert("RGB")
    return image_tensor(np.asarray(rgb, dtype=np.float32) / 255)[None]


def paired_images(folder: UserFolder, first: str, second: str, input_name: str) -> list[tuple[Path, Path]]:
    """The images of `folder/first` with their namesakes in `folder/second` (same file name), in
    name order; an image without its namesake is an error that names it, and so is a sub-folder or
    image that is a link out of ComfyUI's folder."""
    firsts, seconds = folder.path / first, folder.path / second
    for sub in (firsts, seconds):
        if not sub.is_dir() or not folder.inside(sub):
            raise ValueError(f"{input_name}: '{folder.text}' has no {sub.name}/ folder inside {folder.where}; put "
                             f"the images in {first}/ and {second}/ under the same file names")
    names, others = image_names(firsts), set(image_names(seconds))
    unpaired = [name for name in names if name not in others] + sorted(others - set(names))
    if unpaired:
        raise ValueError(f"{input_name}: {len(unpaired)} image(s) without a namesake in the other folder, e.g. "
                         f"{', '.join(unpaired[:3])}; give each image in {first}/ one of the same name in {second}/")
    if not names:
        raise ValueError(f"{input_name}: '{folder.text}/{first}' holds no images ({', '.join(IMAGE_SUFFIXES)})")
    pairs = [(firsts / name, seconds / name) for name in names]
    outside = [f"{path.parent.name}/{path.name}" for pair in pairs for path in pair if not folder.inside(path)]
    if outside:
        raise ValueError(f"{input_name}: {len(outside)} image(s) are links out of {folder.where}, e.g. "
                         f"{', '.join(outside[:3])}; copy the images themselves into the folder")
    return pairs
