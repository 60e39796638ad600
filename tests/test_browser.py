"""The shipped UI workflows in the real ComfyUI frontend: headless Chromium (Debian's, driven over
the DevTools protocol) opens each file from the `server` fixture's frontend as a user's file
would be opened, and every node must have a registered type, none may be drawn in error (red),
no "missing nodes" dialog may open, the frontend must keep every widget value and link, and the
prompt the frontend would queue must be the shipped API workflow. A screenshot of each is kept
in $SSDIFF_TEST_ARTIFACTS (default: pytest's temporary folder). Needs scripts/setup_browser.sh."""
from __future__ import annotations

import copy
import os
import shutil
from pathlib import Path

import pytest

from chromium_cdp import (SETUP_HINT, Chromium, find_chromium, inspect_workflow, off_machine_responses,
                          open_comfyui, show_whole_graph)
from export_ui_workflows import api_differences
from test_workflows_ui import SAMPLE, UI_WORKFLOWS, load_api, load_ui


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("SSDIFF_TEST_ARTIFACTS") or tmp_path_factory.mktemp("browser_artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder.resolve()


@pytest.fixture(scope="module")
def frontend(server, artifacts, request):
    if find_chromium() is None:
        pytest.fail(f"no Chromium to open the ComfyUI frontend in: {SETUP_HINT}", pytrace=False)
    for image in SAMPLE.glob("*.png"):  # LoadImage shows its image, as on a user's machine
        shutil.copy(image, server.input_dir / image.name)
    with Chromium(width=1600, height=1000) as browser:
        open_comfyui(browser, server.url)
        yield browser
        assert not off_machine_responses(browser), "the browser got responses from off this machine"
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"browser screenshots: {artifacts}")


def open_and_screenshot(frontend: Chromium, artifacts: Path, workflow: dict, name: str) -> dict:
    report = inspect_workflow(frontend, workflow, f"{name}.json")
    show_whole_graph(frontend)
    path = frontend.screenshot(artifacts / f"{name}.png")
    print(f"\nscreenshot of {name}: {path}")
    return report


def widget_values(nodes: list[dict]) -> dict:
    return {node["id"]: node.get("widgets_values") or [] for node in nodes}


@pytest.mark.parametrize("name", UI_WORKFLOWS)
def test_workflow_opens_in_the_frontend_with_no_missing_or_red_node(frontend, artifacts, name):
    workflow = load_ui(name)
    report = open_and_screenshot(frontend, artifacts, workflow, name)
    assert report["types"] == [[node["id"], node["type"]] for node in workflow["nodes"]]
    assert not report["unregistered"], f"node types the frontend does not know: {report['unregistered']}"
    assert not report["with_errors"], f"nodes drawn in error: {report['with_errors']}"
    assert not report["dialogs"], f"the frontend opened a dialog: {report['dialogs']}"
    assert not report["toasts"], f"the frontend showed a message: {report['toasts']}"
    saved = report["serialized"]
    assert widget_values(saved["nodes"]) == widget_values(workflow["nodes"])
    assert saved["links"] == workflow["links"]
    problems = api_differences(report["prompt"], load_api(name))
    assert not problems, f"the frontend queues something else than workflows/{name}_api.json:\n  " + \
        "\n  ".join(problems)


def test_the_checks_see_a_missing_node_and_a_shifted_widget(frontend, artifacts):
    workflow = load_ui("sampler_custom_advanced")
    missing = copy.deepcopy(workflow)
    missing["nodes"][0]["type"] = "SSDiffNoSuchNode"
    report = open_and_screenshot(frontend, artifacts, missing, "control_missing_node")
    assert report["unregistered"] == [f"{missing['nodes'][0]['id']} SSDiffNoSuchNode"]
    assert report["with_errors"] and any("missing nodes" in dialog for dialog in report["dialogs"])

    # A widget value dropped (as an input added to a node would shift them): the frontend opens
    # it without complaint, so only the prompt comparison sees it.
    shifted = copy.deepcopy(workflow)
    sampler = next(node for node in shifted["nodes"] if node["type"] == "SSDiffSelectiveSampler")
    del sampler["widgets_values"][0]
    report = open_and_screenshot(frontend, artifacts, shifted, "control_shifted_widgets")
    assert not report["unregistered"] and not report["dialogs"]
    assert any("SSDiffSelectiveSampler" in problem
               for problem in api_differences(report["prompt"], load_api("sampler_custom_advanced")))
