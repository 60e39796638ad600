"""API-format workflows: the catalogue files they name, and two compared node by node, input by
input."""
from __future__ import annotations

from comfyui_ssdiff.models.files import CATALOGUE, CatalogueFile, catalogue_file


def files_by_node(api: dict) -> dict[str, list[CatalogueFile]]:
    """Node id -> the catalogue files its inputs name (any input equal to a file's name)."""
    named = {node_id: [catalogue_file(value) for value in node.get("inputs", {}).values() if isinstance(value, str)]
             for node_id, node in api.items()}
    return {node_id: [entry for entry in entries if entry] for node_id, entries in named.items() if any(entries)}


def workflow_files(api: dict) -> list[CatalogueFile]:
    """The catalogue files an API-format workflow names, each once, in the catalogue's order."""
    names = {entry.name for entries in files_by_node(api).values() for entry in entries}
    return [entry for entry in CATALOGUE if entry.name in names]


def api_differences(prompt: dict, api: dict) -> list[str]:
    """How an API prompt made from a UI workflow (by the frontend or a converter) differs from the
    shipped API file: nodes, class, _meta (the title) and each input."""
    problems = []
    for node_id in sorted(set(prompt) | set(api), key=int):
        ours, theirs = prompt.get(node_id), api.get(node_id)
        if ours is None or theirs is None:
            problems.append(f"node {node_id}: only in {'the API file' if ours is None else 'the UI graph'}")
            continue
        if ours["class_type"] != theirs["class_type"]:
            problems.append(f"node {node_id}: class_type {ours['class_type']} != {theirs['class_type']}")
        if ours.get("_meta") != theirs.get("_meta"):
            problems.append(f"node {node_id} ({theirs['class_type']}): _meta {ours.get('_meta')} != "
                            f"{theirs.get('_meta')}")
        for name in sorted(set(ours["inputs"]) | set(theirs["inputs"])):
            if ours["inputs"].get(name, "<missing>") != theirs["inputs"].get(name, "<missing>"):
                problems.append(f"node {node_id} ({theirs['class_type']}).{name}: UI gives "
                                f"{ours['inputs'].get(name, '<missing>')!r}, API file has "
                                f"{theirs['inputs'].get(name, '<missing>')!r}")
    return problems
