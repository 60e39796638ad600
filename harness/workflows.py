"""API-format workflows compared node by node, input by input."""
from __future__ import annotations


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
