"""The libraries that tests needing no ComfyUI depend on, as one line (`python -m
harness.library_versions`): two hosts printing the same line give those tests the same results,
so .ci/run runs them on the first host only (tests/conftest.py, `torch_only`)."""
from __future__ import annotations

import platform
from importlib import metadata

DISTRIBUTIONS = ("torch", "numpy", "opencv-python", "opencv-python-headless", "pillow", "safetensors", "spandrel",
                 "spandrel_extra_arches", "facexlib", "scipy", "lpips", "hypothesis")


def fingerprint() -> str:
    versions = [f"python={platform.python_version()}"]
    for name in DISTRIBUTIONS:
        try:
            versions.append(f"{name}={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name}=-")
    return ";".join(versions)


if __name__ == "__main__":
    print(fingerprint())
