"""Runs the pack inside the real ComfyUI host built by scripts/setup_host.sh.

Layers: tests/core needs only torch; everything else gets ComfyUI in-process (`comfy` fixture) or
as a server on 127.0.0.1 (`server` fixture). Model files are tiny random networks of the real
architectures, written into a temporary models folder that both share.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
HOST = Path(os.environ.get("SSDIFF_HOST", REPO / ".host" / "ComfyUI")).resolve()
GOLDEN = Path(__file__).resolve().parent / "fixtures" / "golden"

if not (HOST / "main.py").exists():
    raise pytest.UsageError(f"no ComfyUI host at {HOST}: run scripts/setup_host.sh first")
# The host first (its `nodes` module must win over this pack's `nodes` package), the repo last
# (for `ssdiff_core` and `models` in tests that need no host), then the test helpers.
sys.path.insert(0, str(HOST))
sys.path.append(str(REPO))
sys.path.append(str(Path(__file__).resolve().parent))

from tiny_models import save_face_ddpm, tiny_face_unet  # noqa: E402


@pytest.fixture(scope="session")
def models_root(tmp_path_factory) -> Path:
    """A models folder (`ssdiff/` inside) shared by the in-process host and the server."""
    root = tmp_path_factory.mktemp("models")
    ssdiff = root / "ssdiff"
    ssdiff.mkdir()
    save_face_ddpm(tiny_face_unet(seed=0), ssdiff / "tiny_face_ddpm.pth")
    save_face_ddpm(tiny_face_unet(seed=1), ssdiff / "tiny_face_ddpm.safetensors")
    shutil.copy(GOLDEN / "tiny_unet.pth", ssdiff / "golden_tiny_unet.pth")
    return root


@pytest.fixture(scope="session")
def comfy(models_root):
    """ComfyUI 0.3.75 in-process on the CPU, with the custom nodes loaded; returns `nodes`."""
    import comfy.options  # noqa: F401  (as main.py: before cli_args is read)
    from comfy.cli_args import args
    args.cpu = True
    import utils.extra_config  # noqa: F401  (before `nodes`, as main.py does)
    import server  # noqa: F401
    import folder_paths
    import nodes

    asyncio.run(nodes.init_extra_nodes(init_custom_nodes=True, init_api_nodes=False))
    folder_paths.add_model_folder_path("ssdiff", str(models_root / "ssdiff"), is_default=True)
    assert "SSDiffSampler" in nodes.NODE_CLASS_MAPPINGS, "the pack did not load into ComfyUI"
    return nodes


@pytest.fixture(scope="session")
def pack(comfy):
    """The pack's top-level module as ComfyUI imported it."""
    for module in list(sys.modules.values()):
        if Path(getattr(module, "__file__", "") or "").resolve() == REPO / "__init__.py":
            return module
    raise AssertionError("ComfyUI did not import the pack")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ComfyServer:
    def __init__(self, url: str, process: subprocess.Popen, log: Path, input_dir: Path, output_dir: Path):
        self.url, self.process, self.log = url, process, log
        self.input_dir, self.output_dir = input_dir, output_dir

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="session")
def server(models_root, tmp_path_factory):
    """`main.py --cpu` on a free loopback port, reading the shared models folder."""
    import requests

    work = tmp_path_factory.mktemp("server")
    config = work / "extra_model_paths.yaml"
    config.write_text(f"ssdiff_tests:\n  base_path: {models_root}\n  ssdiff: ssdiff\n")
    dirs = {name: work / name for name in ("input", "output", "user", "temp")}
    for path in dirs.values():
        path.mkdir()
    port = _free_port()
    log = work / "server.log"
    command = [sys.executable, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
               "--extra-model-paths-config", str(config),
               "--input-directory", str(dirs["input"]), "--output-directory", str(dirs["output"]),
               "--user-directory", str(dirs["user"]), "--temp-directory", str(dirs["temp"])]
    with log.open("wb") as log_file:
        process = subprocess.Popen(command, cwd=HOST, stdout=log_file, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"ComfyUI exited with {process.returncode}:\n{log.read_text()}")
        try:
            if requests.get(f"{url}/object_info/SSDiffSampler", timeout=2).ok:
                break
        except requests.ConnectionError:
            time.sleep(0.5)
    else:
        process.kill()
        raise AssertionError(f"ComfyUI did not come up:\n{log.read_text()}")
    yield ComfyServer(url, process, log, dirs["input"], dirs["output"])
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
