"""What holds the layout together: the tests, the harness, the scripts and the benchmarks import
the pack only as one package (`comfyui_ssdiff`, registered by the harness), never its packages by
their bare names, which ComfyUI's own `nodes` module and the idea of its `models/` folder share
(issue 27, point 7)."""
from __future__ import annotations

import ast

from conftest import REPO

PACK_PACKAGES = {"models", "priors", "ssdiff_core", "comfy_adapter", "training"}


def imported_modules(path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_nothing_outside_the_pack_imports_its_packages_by_their_bare_names():
    outside = [path for folder in ("tests", "harness", "scripts", "bench") for path in (REPO / folder).rglob("*.py")]
    assert len(outside) > 40
    bare = {f"{path.relative_to(REPO)}: {name}" for path in outside for name in imported_modules(path)
            if name.split(".")[0] in PACK_PACKAGES}
    assert not bare, sorted(bare)


def test_the_harness_registers_the_pack_as_one_package():
    import sys

    import harness

    package = sys.modules[harness.PACK]
    assert package.__path__ == [str(REPO)]
    from comfyui_ssdiff.models import files

    assert files.__name__ == "comfyui_ssdiff.models.files" and "models.files" not in sys.modules


LAYOUT_CALLS = {"movedim", "permute", "numpy", "from_numpy"}
"""Calls that move an image's channels or turn a tensor into an array and back."""


def layout_calls(path) -> list[str]:
    return [f"{path.relative_to(REPO)}:{node.lineno} {node.func.attr}" for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in LAYOUT_CALLS]


def test_one_image_boundary_priors_and_the_core_never_convert_a_layout():
    """Issue 27, point 4: ComfyUI's IMAGE (B x H x W x C) becomes the priors' and the core's
    B x C x H x W in nodes/boundary.py; arrays for OpenCV and PIL are made in priors/arrays.py alone.
    No other module of priors/ or ssdiff_core/ moves channels or makes arrays, and no other node
    module does either (the adapter converts only what ComfyUI's own VAE and image files give)."""
    method = [path for folder in ("priors", "ssdiff_core") for path in sorted((REPO / folder).rglob("*.py"))]
    node_modules = sorted((REPO / "nodes").rglob("*.py"))
    assert len(method) > 20 and len(node_modules) > 15
    converting = {path.relative_to(REPO).as_posix() for path in method + node_modules if layout_calls(path)}
    assert converting == {"priors/arrays.py", "nodes/boundary.py"}, sorted(
        call for path in method + node_modules for call in layout_calls(path))


def test_tests_that_ci_runs_on_one_host_only_reach_no_comfyui_but_through_a_fixture(request):
    """Torch-only tests (conftest.is_torch_only: tests/core, tests/priors and modules marked so,
    without the host's fixtures) run on the first host only; a module of them that imported ComfyUI,
    the pack's host adapter or the server harness itself would be host-dependent without a fixture
    to say so."""
    from conftest import TORCH_ONLY_FOLDERS

    host_modules = ("comfy", "comfy_api", "comfy_extras", "server", "execution", "folder_paths",
                    "harness.headless", "harness.in_process_host", "comfyui_ssdiff.comfy_adapter",
                    "comfyui_ssdiff.nodes")
    tests = REPO / "tests"
    modules = [path for folder in TORCH_ONLY_FOLDERS for path in (tests / folder).glob("test_*.py")]
    modules += [path for path in tests.glob("test_*.py") if "pytestmark = pytest.mark.torch_only" in path.read_text()]
    assert len(modules) > 20
    for path in modules:
        reached = {name for name in imported_modules(path)
                   if any(name == module or name.startswith(module + ".") for module in host_modules)}
        assert not reached, f"{path.relative_to(REPO)} imports {sorted(reached)}"
