"""Every node has a help page (web/docs/<node_id>.md, which ComfyUI's frontend shows beside the node)
that names each of its inputs, no page is left over from a node that is gone, and every input has a
tooltip; the pack declares the web folder, and ComfyUI serves it."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from conftest import REPO

DOCS = REPO / "web" / "docs"


@pytest.fixture(scope="module")
def pack_nodes(comfy) -> dict[str, type]:
    found = {node_id: cls for node_id, cls in comfy.NODE_CLASS_MAPPINGS.items() if node_id.startswith("SSDiff")}
    assert found, "no SSDiff node is registered"
    return found


def page(node_id: str) -> str:
    return (DOCS / f"{node_id}.md").read_text(encoding="utf-8")


def test_the_pack_declares_its_web_folder_and_comfyui_serves_it(comfy, pack):
    assert getattr(pack, "WEB_DIRECTORY", None) == "./web"
    web = (REPO / pack.WEB_DIRECTORY).resolve()
    assert web.is_dir() and (web / "docs").is_dir()
    served = {Path(path).resolve() for path in comfy.EXTENSION_WEB_DIRS.values()}
    assert web in served, f"ComfyUI registered no web folder {web} (it has {sorted(map(str, served))})"


def test_every_node_has_a_help_page_titled_with_its_display_name(pack_nodes):
    missing = sorted(node_id for node_id in pack_nodes if not (DOCS / f"{node_id}.md").is_file())
    assert not missing, f"nodes without a help page in {DOCS}: {missing}"
    for node_id, cls in pack_nodes.items():
        title = next((line for line in page(node_id).splitlines() if line.strip()), "")
        assert title == f"# {cls.define_schema().display_name}", f"{node_id}.md begins with {title!r}"


def test_every_page_is_of_a_node(pack_nodes):
    pages = {path.stem for path in DOCS.glob("*.md")}
    orphans = sorted(pages - set(pack_nodes))
    assert not orphans, f"help pages of no node (renamed or removed?): {orphans}"
    others = sorted(name for name in os.listdir(DOCS) if not name.endswith(".md"))
    assert not others, f"files in {DOCS} that are no help page: {others}"


def test_every_input_is_named_on_its_nodes_page(pack_nodes):
    unnamed = {}
    for node_id, cls in sorted(pack_nodes.items()):
        named = set(re.findall(r"`([^`\n]+)`", page(node_id)))
        missing = [spec.id for spec in cls.define_schema().inputs if spec.id not in named]
        if missing:
            unnamed[node_id] = missing
    assert not unnamed, f"inputs not named in backticks on their node's page: {unnamed}"


def test_every_input_has_a_tooltip(pack_nodes):
    without = {}
    for node_id, cls in sorted(pack_nodes.items()):
        missing = [spec.id for spec in cls.define_schema().inputs if not (spec.tooltip or "").strip()]
        if missing:
            without[node_id] = missing
    assert not without, f"inputs without a tooltip: {without}"
