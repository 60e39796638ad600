"""The pack's subgraph blueprints (subgraphs/*.json, written by scripts/make_blueprints.py): one
node whose type is the id of the subgraph in `definitions.subgraphs[0]`, as ComfyUI serves them
(GET /global_subgraphs) and its frontend adds them. Shared by the script and
tests/test_blueprints.py."""
from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SUBGRAPHS = REPO / "subgraphs"
INPUT_NODE, OUTPUT_NODE = -10, -20
"""The ids of a subgraph's input and output nodes in its links."""


def blueprint_names() -> list[str]:
    return sorted(path.stem for path in SUBGRAPHS.glob("*.json"))


def load_blueprint(name: str) -> dict:
    return json.loads((SUBGRAPHS / f"{name}.json").read_text(encoding="utf-8"))


def definition(blueprint: dict) -> dict:
    """The subgraph the blueprint's node stands for."""
    (node,) = blueprint["nodes"]
    (subgraph,) = [entry for entry in blueprint["definitions"]["subgraphs"] if entry["id"] == node["type"]]
    return subgraph


def flattened(prompt: dict, outer_ids: dict[str, str] | None = None) -> dict:
    """An API prompt the frontend made of a graph holding one subgraph node, with the inner nodes'
    ids ('19:11', in links too) back to their ids inside the subgraph ('11'), and the ids of the
    nodes outside it renamed by `outer_ids` (kept where it has none)."""
    def renamed(node_id: str) -> str:
        node_id = str(node_id)
        return node_id.rsplit(":", 1)[-1] if ":" in node_id else (outer_ids or {}).get(node_id, node_id)

    flat = {}
    for node_id, node in prompt.items():
        if renamed(node_id) in flat:
            raise ValueError(f"two nodes would be {renamed(node_id)}: give the outer ones other ids")
        flat[renamed(node_id)] = {**node, "inputs": {
            name: [renamed(value[0]), value[1]] if isinstance(value, list) else value
            for name, value in node["inputs"].items()}}
    return flat


def promoted_inputs(blueprint: dict) -> dict[str, list[tuple[int, str]]]:
    """Label of each widget input of the subgraph -> the inner (node id, widget name)s it sets."""
    subgraph = definition(blueprint)
    nodes = {node["id"]: node for node in subgraph["nodes"]}
    links = {link["id"]: link for link in subgraph["links"]}
    promoted = {}
    for entry in subgraph["inputs"]:
        targets = [(links[link_id]["target_id"], links[link_id]["target_slot"]) for link_id in entry["linkIds"]]
        slots = [nodes[node_id]["inputs"][slot] for node_id, slot in targets]
        if all(slot.get("widget") for slot in slots):
            promoted[entry.get("label") or entry["name"]] = [(node_id, slot["widget"]["name"])
                                                             for (node_id, _), slot in zip(targets, slots)]
    return promoted
