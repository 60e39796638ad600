"""Running the pack in a real ComfyUI from outside it: a server on 127.0.0.1 (headless), ComfyUI
in this process (in_process_host), its frontend in headless Chromium (browser), tiny random
networks of the real architectures saved as checkpoint files (tiny_models), and comparing API
workflows (workflows). Shared by the tests, the benchmarks and the scripts; never loaded by
ComfyUI itself.

Importing the harness makes the pack importable as one package, `comfyui_ssdiff` (its folders as
ComfyUI sees them: `comfyui_ssdiff.models`, `comfyui_ssdiff.ssdiff_core`, ...), without running its
ComfyUI entry point: its packages are never imported by their bare names, which ComfyUI's own
`nodes` module and the idea of a `models` folder share."""
from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path

PACK = "comfyui_ssdiff"
REPO = Path(__file__).resolve().parent.parent


def _register_pack() -> None:
    if PACK in sys.modules:
        return
    spec = importlib.machinery.ModuleSpec(PACK, None, is_package=True)
    spec.submodule_search_locations = [str(REPO)]
    package = importlib.util.module_from_spec(spec)
    package.__path__ = [str(REPO)]
    sys.modules[PACK] = package


_register_pack()
