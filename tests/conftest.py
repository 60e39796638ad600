"""Runs the pack inside the real ComfyUI host built by scripts/setup_host.sh.

Layers: tests/core needs only torch; everything else gets ComfyUI in-process (`comfy` fixture) or
as a server on 127.0.0.1 (`server` fixture). Model files are tiny random networks of the real
architectures, written into a temporary models folder that both share.

Torch-only tests (in tests/core and tests/priors, or marked so by their module, using none of the
host's fixtures) are marked `torch_only`. Where SSDIFF_TORCH_ONLY_RAN holds this venv's library line
(harness/library_versions.py), as .ci/run sets it for every host after the first, they are left
out: the first host ran them with the same libraries.
"""
from __future__ import annotations

import ipaddress
import logging
import os
import shutil
import socket
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "fixtures" / "golden"
HOST_PROBES = Path(__file__).resolve().parent / "host_probes"

# The host first (its `nodes` module must win over this pack's `nodes` package), the repo last
# (for `ssdiff_core`, `priors`, `models` in tests that need no host, and the `harness`), then the
# tests' own helpers.
sys.path.append(str(REPO))
sys.path.append(str(Path(__file__).resolve().parent))

from harness.headless import ComfyServer, default_host  # noqa: E402

HOST = default_host()
sys.path.insert(0, str(HOST))

from harness.in_process_host import loaded_pack, start_comfyui  # noqa: E402
from harness.tiny_models import (save_arcface, save_cap_vstnet, save_codeformer, save_face_ddpm, save_face_parser,  # noqa: E402
                                 save_bopbtl_restoration, save_retinaface_mobile, save_scratch_detector,
                                 save_vgg16_features, tiny_face_unet)
from comfyui_ssdiff.models.files import MODEL_FOLDERS  # noqa: E402
from harness.library_versions import fingerprint  # noqa: E402

TORCH_ONLY_FOLDERS = ("core", "priors")
HOST_FIXTURES = {"comfy", "pack", "server"}
TORCH_ONLY_RAN = "SSDIFF_TORCH_ONLY_RAN"
_left_out: list[str] = []


def is_torch_only(item: pytest.Item) -> bool:
    """A test of tests/core or tests/priors that reaches no ComfyUI (nor any fixture that does), or
    one marked torch_only by its module."""
    if HOST_FIXTURES & set(getattr(item, "fixturenames", ())):
        return False
    folder = Path(str(item.fspath)).parent
    return (item.get_closest_marker("torch_only") is not None
            or folder.parent == Path(__file__).resolve().parent and folder.name in TORCH_ONLY_FOLDERS)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    torch_only = [item for item in items if is_torch_only(item)]
    for item in torch_only:
        item.add_marker(pytest.mark.torch_only)
    ran = os.environ.get(TORCH_ONLY_RAN)
    if ran and ran == fingerprint() and torch_only:
        config.hook.pytest_deselected(items=torch_only)
        left_out = set(map(id, torch_only))
        items[:] = [item for item in items if id(item) not in left_out]
        _left_out.append(f"{len(torch_only)} torch-only tests left out: an earlier host ran them with the same "
                         f"libraries ({TORCH_ONLY_RAN})")
    elif ran:
        _left_out.append(f"torch-only tests run here too: {TORCH_ONLY_RAN} names other libraries than this venv's")


def pytest_report_collectionfinish(config: pytest.Config, start_path, startdir=None, items=()) -> list[str]:
    return list(_left_out)


@pytest.fixture(autouse=True, scope="session")
def no_network():
    """Every connection but loopback fails, so a test that downloads anything fails too."""
    connect = socket.socket.connect

    def loopback_only(sock, address):
        host = address[0] if isinstance(address, tuple) else address
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                allowed = ipaddress.ip_address(host).is_loopback
            except ValueError:
                allowed = host == "localhost"
            if not allowed:
                raise ConnectionRefusedError(f"tests may not reach the network (tried {address})")
        return connect(sock, address)

    socket.socket.connect = loopback_only
    yield
    socket.socket.connect = connect


def require_host() -> None:
    if not (HOST / "main.py").exists():
        pytest.fail(f"no ComfyUI host at {HOST}: run scripts/setup_host.sh first", pytrace=False)


@pytest.fixture(scope="session")
def models_root(tmp_path_factory) -> Path:
    """A models folder laid out like ComfyUI's, shared by the in-process host and the server."""
    root = tmp_path_factory.mktemp("models")
    for folder in MODEL_FOLDERS:
        (root / folder).mkdir()
    ssdiff = root / "ssdiff"
    save_face_ddpm(tiny_face_unet(seed=0), ssdiff / "tiny_face_ddpm.pth")
    save_face_ddpm(tiny_face_unet(seed=1), ssdiff / "tiny_face_ddpm.safetensors")
    shutil.copy(GOLDEN / "tiny_unet.pth", ssdiff / "golden_tiny_unet.pth")
    save_scratch_detector(ssdiff / "FT_Epoch_latest.pt")
    save_cap_vstnet(ssdiff / "photo_image.pt")
    save_face_parser(ssdiff / "resnet34.pt", "resnet34")
    save_vgg16_features(ssdiff / "vgg16-397923af.pth")
    detection = root / "facedetection"
    save_retinaface_mobile(detection / "detection_mobilenet0.25_Final.pth")
    save_face_parser(detection / "parsing_parsenet.pth", "parsenet")
    save_face_parser(detection / "parsing_bisenet.pth", "bisenet")
    save_arcface(detection / "recognition_arcface_ir_se50.pth")
    save_codeformer(root / "facerestore_models" / "codeformer.pth")
    return root


@pytest.fixture(scope="session")
def bopbtl_files(models_root) -> Path:
    """BOPBTL's global-restoration files of the quality and scratch modes (random full-size
    networks, about 370 MB) in models/ssdiff/restoration, as its zip unpacks; written for the tests
    that ask."""
    return save_bopbtl_restoration(models_root / "ssdiff" / "restoration", ("quality", "scratch"))


@pytest.fixture(scope="session")
def ddcolor_file(models_root) -> Path:
    """A small random DDColor of the real architecture (ConvNeXt-T, about 170 MB) saved as the
    released files are, in models/ddcolor under the default file's name; written for the tests that
    ask."""
    from harness.tiny_ddcolor import save_ddcolor

    return save_ddcolor(models_root / "ddcolor" / "ddcolor_modelscope.pth")


class StartUpLog(logging.Handler):
    """The warnings and errors ComfyUI logs while it starts in-process."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


COMFY_START_UP_LOG = StartUpLog()


@pytest.fixture(scope="session")
def comfy(models_root):
    """The host's ComfyUI in-process on the CPU, with the custom nodes loaded; returns `nodes`."""
    require_host()
    logging.getLogger().addHandler(COMFY_START_UP_LOG)
    try:
        nodes = start_comfyui(HOST, cpu=True)
    finally:
        logging.getLogger().removeHandler(COMFY_START_UP_LOG)
    import folder_paths

    for folder in MODEL_FOLDERS:
        folder_paths.add_model_folder_path(folder, str(models_root / folder), is_default=True)
    assert "SSDiffSampler" in nodes.NODE_CLASS_MAPPINGS, "the pack did not load into ComfyUI"
    return nodes


@pytest.fixture(scope="session")
def pack(comfy):
    """The pack's top-level module as ComfyUI imported it."""
    return loaded_pack(REPO)


@pytest.fixture(scope="session")
def server(models_root, bopbtl_files, ddcolor_file, tmp_path_factory):
    """`main.py --cpu` on a free loopback port, reading the shared models folder, with the
    test-only fault nodes of tests/host_probes beside the pack."""
    require_host()
    with ComfyServer(HOST, tmp_path_factory.mktemp("server"), models_root, custom_nodes=HOST_PROBES) as running:
        yield running
