"""The README's install steps, performed as written into a fresh copy of a ComfyUI host: the
pack's folder into custom_nodes/, its requirements into ComfyUI's own Python, a start: every
SSDiff node is listed and the pack imports cleanly (issue 32, part 3)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import requests

from conftest import HOST, REPO, require_host
from harness.headless import ComfyServer

HOST_OWN = {"custom_nodes", "models", "input", "output", "user", "temp", "__pycache__", ".git"}


def readme_install_commands() -> list[str]:
    block = re.search(r"## Install into your ComfyUI.*?```bash\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    return [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]


def tracked_files(repo: Path) -> list[str]:
    """What a clone of the repository holds: git's tracked files (the working tree's versions)."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=repo, capture_output=True, check=True).stdout
    return [name for name in listed.decode().split("\0") if name and (repo / name).is_file()]


def test_the_readmes_install_steps_work_in_a_fresh_copy_of_a_host(tmp_path, comfy):
    require_host()
    commands = readme_install_commands()
    assert commands[:3] == ["cd ComfyUI/custom_nodes",
                            "git clone <this repository's address> ComfyUI-SSDiff",
                            "python -m pip install -r ComfyUI-SSDiff/requirements.txt"], commands
    comfyui = tmp_path / "ComfyUI"
    shutil.copytree(HOST, comfyui, ignore=lambda folder, names: [name for name in names if name in HOST_OWN
                                                                  and Path(folder) == HOST])
    (comfyui / "custom_nodes").mkdir()
    # git clone: the repository's tracked files in custom_nodes/ComfyUI-SSDiff
    pack = comfyui / "custom_nodes" / "ComfyUI-SSDiff"
    for name in tracked_files(REPO):
        (pack / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, pack / name)
    # python -m pip install -r ComfyUI-SSDiff/requirements.txt, in ComfyUI's Python, offline: every
    # requirement must already be there
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "-r", "ComfyUI-SSDiff/requirements.txt"],
                               cwd=comfyui / "custom_nodes", capture_output=True, text=True, timeout=300,
                               env={**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    assert installed.returncode == 0, installed.stdout[-2000:] + installed.stderr[-2000:]
    with ComfyServer(comfyui, tmp_path / "work") as server:
        log = server.log_text()
        info = requests.get(f"{server.url}/object_info", timeout=60).json()
    assert not re.search(r"IMPORT FAILED.*ComfyUI-SSDiff", log), log[-3000:]
    expected = {node_id for node_id in comfy.NODE_CLASS_MAPPINGS if node_id.startswith("SSDiff")}
    assert expected and expected <= set(info), sorted(expected - set(info))


def test_the_registry_metadata_is_complete_as_comfyui_reads_it():
    """pyproject.toml as ComfyUI's own comfy_config parses it: a registry id by the registry's
    rules, a semantic version, publisher, display name, an icon that is a file of this repository,
    licence and repository."""
    from comfy_config import config_parser

    config = config_parser.extract_node_configuration(str(REPO))
    project, comfy_section = config.project, config.tool_comfy
    assert re.fullmatch(r"[A-Za-z](?:[A-Za-z0-9]|[-_.](?=[A-Za-z0-9])){0,98}", project.name)
    assert "comfyui" not in project.name.lower()
    assert re.fullmatch(r"\d+\.\d+\.\d+", project.version) and project.description
    assert project.license.file == "LICENSE" and (REPO / "LICENSE").is_file()
    assert project.urls.repository.startswith("https://github.com/")
    assert comfy_section.publisher_id and comfy_section.display_name
    icon = comfy_section.icon
    owner_repo = project.urls.repository.removeprefix("https://github.com/")
    assert icon.startswith(f"https://raw.githubusercontent.com/{owner_repo}/main/"), icon
    assert (REPO / icon.split("/main/", 1)[1]).is_file()
