"""Images a node reads from a folder the user names: absolute, or inside ComfyUI's input folder."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def input_folder(path_text: str, input_name: str) -> Path:
    """The folder `path_text` names; relative paths are inside ComfyUI's input folder."""
    import folder_paths

    path = Path(path_text.strip()).expanduser()
    folder = path if path.is_absolute() else Path(folder_paths.get_input_directory()) / path
    if not folder.is_dir():
        raise ValueError(f"{input_name}: no folder {folder}; give an absolute path or one inside ComfyUI's input "
                         "folder")
    return folder


def image_names(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES)


def read_rgb(path: Path) -> torch.Tensor:
    """1 x 3 x H x W RGB in [0, 1]; EXIF orientation applied, grey and RGBA made RGB."""
    with Image.open(path) as picture:
        rgb = ImageOps.exif_transpose(picture).convert("RGB")
    return torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 255).permute(2, 0, 1)[None]


def paired_images(folder: Path, first: str, second: str, input_name: str) -> list[tuple[Path, Path]]:
    """The images of `folder/first` with their namesakes in `folder/second` (same file name), in
    name order; an image without its namesake is an error that names it."""
    firsts, seconds = folder / first, folder / second
    for sub in (firsts, seconds):
        if not sub.is_dir():
            raise ValueError(f"{input_name}: {folder} has no {sub.name}/ folder; put the images in "
                             f"{first}/ and {second}/ under the same file names")
    names, others = image_names(firsts), set(image_names(seconds))
    unpaired = [name for name in names if name not in others] + sorted(others - set(names))
    if unpaired:
        raise ValueError(f"{input_name}: {len(unpaired)} image(s) without a namesake in the other folder, e.g. "
                         f"{', '.join(unpaired[:3])}; give each image in {first}/ one of the same name in {second}/")
    if not names:
        raise ValueError(f"{input_name}: {firsts} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return [(firsts / name, seconds / name) for name in names]
