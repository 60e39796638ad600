"""Headless Chromium driven by Playwright: Debian's /usr/bin/chromium (or $CHROMIUM), never a
browser Playwright downloads. Used by tests/test_browser.py and scripts/export_ui_workflows.py to
open the real ComfyUI frontend served by a local ComfyUI.

Kept off the network: each page's context aborts every request but loopback (and records it),
and Chromium itself sends everything but loopback to a dead proxy on 127.0.0.1 (websockets
included, which routing does not see), resolves no host name but localhost, and runs with its
background services (component updates, sync, safe browsing, metrics, ...) switched off.
"""
from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from typing import Iterator, NamedTuple
from urllib.parse import urlsplit

from playwright.sync_api import Browser, Page, Response, Route, sync_playwright

SETUP_HINT = "run scripts/setup_browser.sh (installs Debian's chromium)"

OFFLINE_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--no-default-browser-check", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--disable-default-apps", "--disable-extensions", "--disable-domain-reliability",
    "--disable-breakpad", "--disable-client-side-phishing-detection", "--metrics-recording-only", "--no-pings",
    "--mute-audio", "--password-store=basic",
    # No --disable-features: it would replace Playwright's own list (network time queries,
    # optimization hints, search preconnects, ... off). Off the network: all but loopback goes to a
    # proxy that is not there (Chromium never falls back to a direct connection for a fixed
    # proxy), and no name but localhost resolves.
    "--proxy-server=http://127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
)


def find_chromium() -> str | None:
    """$CHROMIUM, else Debian's chromium, else another Chromium/Chrome on PATH."""
    if os.environ.get("CHROMIUM"):
        return shutil.which(os.environ["CHROMIUM"])
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def is_local(url: str) -> bool:
    """Loopback (127.0.0.1, localhost, [::1]) or no network at all (data:, blob:, about:)."""
    parts = urlsplit(url)
    return parts.scheme in ("data", "blob", "about") or parts.hostname in ("127.0.0.1", "localhost", "::1")


@contextmanager
def launch() -> Iterator[Browser]:
    """Headless Chromium with OFFLINE_FLAGS; its pages come from offline_page()."""
    executable = find_chromium()
    if executable is None:
        raise RuntimeError(f"no Chromium found: {SETUP_HINT}")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=OFFLINE_FLAGS, headless=True,
                                             chromium_sandbox=False)
        try:
            yield browser
        finally:
            browser.close()


class OfflinePage(NamedTuple):
    page: Page
    refused: list[str]
    """URLs the page asked for that are not loopback (aborted)."""
    off_machine: list[str]
    """URLs of responses from anywhere but this machine: none, while the guards hold."""


@contextmanager
def offline_page(browser: Browser, width: int = 1600, height: int = 1000) -> Iterator[OfflinePage]:
    """A page in a fresh context (its own storage) of `browser` that reaches nothing but loopback."""
    context = browser.new_context(viewport={"width": width, "height": height}, service_workers="block")
    context.set_default_timeout(120_000)
    tab = OfflinePage(context.new_page(), [], [])

    def loopback_only(route: Route) -> None:
        if is_local(route.request.url):
            route.continue_()
        else:
            tab.refused.append(route.request.url)
            route.abort("blockedbyclient")

    def note_response(response: Response) -> None:
        if not is_local(response.url):
            tab.off_machine.append(response.url)

    context.route("**/*", loopback_only)
    context.on("response", note_response)
    try:
        yield tab
    finally:
        context.close()


# -- the ComfyUI frontend -----------------------------------------------------------------------

FRONTEND_READY = ("window.app && window.app.graph && window.LiteGraph && window.app.canvas && "
                  "document.title.includes('ComfyUI') && "
                  "Object.keys(window.LiteGraph.registered_node_types).length > 100")

# Run before the frontend's own scripts, as a returning user's browser: an empty graph is the
# "previous workflow" (a first visit opens the template browser over the canvas instead), and the
# "Nodes 2.0" banner is dismissed (it would cover the top of the screenshots).
_BEFORE_FRONTEND = """try {
  localStorage.setItem('workflow', JSON.stringify({last_node_id: 0, last_link_id: 0, nodes: [], links: [],
                                                   groups: [], config: {}, extra: {}, version: 0.4}));
  localStorage.setItem('vueNodesBannerDismissed', 'true');
} catch (e) {}"""

INSPECT_JS = r"""
(async ([workflow, name]) => {
  const closeDialogs = () => document.querySelectorAll('.p-dialog-close-button, .p-toast-close-button')
      .forEach(button => button.click());
  closeDialogs();
  if (!document.getElementById('ssdiff-test-style')) {
    // The minimap would cover the bottom right corner of the graph in screenshots.
    const style = document.createElement('style');
    style.id = 'ssdiff-test-style';
    style.textContent = '.minimap-main-container { display: none !important; }';
    document.head.appendChild(style);
  }
  // A closed dialog stays in the page while it fades out; one still there would swallow the
  // next dialog of its kind (1.32's "Missing Models").
  for (let tries = 0; tries < 50 && document.querySelector('.p-dialog'); tries++) {
    await new Promise(resolve => setTimeout(resolve, 50));
  }
  await new Promise(resolve => setTimeout(resolve, 100));
  await app.loadGraphData(workflow, true, true, name);
  await new Promise(resolve => setTimeout(resolve, 300));
  app.canvas.setDirty(true, true);
  await new Promise(resolve => requestAnimationFrame(() => requestAnimationFrame(resolve)));
  const nodes = app.graph.nodes ?? app.graph._nodes;
  const registered = LiteGraph.registered_node_types;
  const text = element => (element.innerText || '').replace(/\s+/g, ' ').trim().slice(0, 2000);
  // Frontend 1.49 gives live node ids as strings ('1'), 1.32 as numbers; saved ids are numbers in both.
  return JSON.stringify({
    frontend_version: window.__COMFYUI_FRONTEND_VERSION__ ?? null,
    types: nodes.map(node => [String(node.id), node.type]),
    unregistered: nodes.filter(node => !registered[node.type]).map(node => `${node.id} ${node.type}`),
    with_errors: nodes.filter(node => node.has_errors).map(node => `${node.id} ${node.type}`),
    dialogs: [...document.querySelectorAll('.p-dialog')].map(text),
    toasts: [...document.querySelectorAll('.p-toast-message')].map(text),
    // Frontend 1.49: missing nodes and widgets naming files the server lacks are reported in an
    // overlay ("N errors found", "Missing node: ...") instead of a dialog.
    overlays: [...document.querySelectorAll('[data-testid="error-overlay"]')].map(text),
    serialized: app.graph.serialize(),
    prompt: (await app.graphToPrompt()).output,
  });
})
"""
"""`INSPECT_JS([workflow, name])`: loads a UI workflow as a user's file would be, then reports the
frontend's version, the node types (ids as strings), nodes whose type the frontend does not know,
nodes drawn in error (red), open dialogs (e.g. "missing nodes"), toasts and error overlays, the
graph as the frontend would save it, and the API prompt the frontend would queue."""


def open_comfyui(page: Page, url: str, timeout: float = 120) -> None:
    """Opens the ComfyUI frontend at `url` and waits until its node types are registered."""
    page.add_init_script(_BEFORE_FRONTEND)
    page.goto(url, wait_until="domcontentloaded")
    page.wait_for_function(FRONTEND_READY, timeout=timeout * 1000, polling=250)


def inspect_workflow(page: Page, workflow: dict, name: str) -> dict:
    """Loads `workflow` (UI format) into the open frontend and returns INSPECT_JS's report."""
    return json.loads(page.evaluate(INSPECT_JS, [workflow, name]))


ERROR_DETAILS_JS = r"""
(async () => {
  // Frontend 1.49: the overlay's "View details" opens the properties panel on its Errors tab.
  const button = document.querySelector('[data-testid="error-overlay-see-errors"]');
  if (!button) return null;
  button.click();
  const groups = () => [...document.querySelectorAll('[data-testid="properties-panel"] [data-testid^="error-group-"]')]
      .filter(group => group.getAttribute('data-testid') !== 'error-group-display-message');
  for (let tries = 0; tries < 50 && !groups().length; tries++) await new Promise(resolve => setTimeout(resolve, 100));
  await new Promise(resolve => setTimeout(resolve, 300));
  const text = element => (element.innerText || '').replace(/\s+/g, ' ').trim();
  return JSON.stringify(Object.fromEntries(groups().map(group =>
      [group.getAttribute('data-testid').replace('error-group-', ''), text(group)])));
})()
"""

CLOSE_PANEL_JS = r"""
(async () => {
  document.querySelector('[data-testid="properties-panel"] button[aria-label="Toggle properties panel"]')?.click();
  await new Promise(resolve => setTimeout(resolve, 200));
  return true;
})()
"""


def open_error_details(page: Page) -> dict[str, str] | None:
    """Opens the frontend's error details as a user clicking "View details" would; returns the
    text of each error group ("missing-model", "missing-node", ...), or None where the frontend
    has no such overlay (1.32)."""
    report = page.evaluate(ERROR_DETAILS_JS)
    return None if report is None else json.loads(report)


MISSING_MODELS_JS = r"""
(() => {
  // Frontend 1.49 keeps what its Missing Models panel lists in a Pinia store; the panel shows each
  // file's name and folder, and its link only behind "Copy URL".
  const pinia = document.querySelector('#vue-app')?.__vue_app__?.config.globalProperties.$pinia;
  const store = pinia?._s.get('missingModel');
  if (!store) return null;
  return JSON.stringify(store.missingModelCandidates.map(candidate => ({
    name: candidate.name, directory: candidate.directory ?? null, url: candidate.url ?? null,
    missing: candidate.isMissing ?? null})));
})()
"""


def missing_model_candidates(page: Page) -> list[dict] | None:
    """What frontend 1.49's Missing Models panel lists (name, directory, url, missing), or None
    where the frontend has no such panel (1.32)."""
    report = page.evaluate(MISSING_MODELS_JS)
    return None if report is None else json.loads(report)


def close_side_panel(page: Page) -> None:
    page.evaluate(CLOSE_PANEL_JS)


SHOW_WHOLE_GRAPH_JS = r"""
(async () => {
  // Every node in view (the frontend's own "fit view"), drawn with its text at any zoom.
  app.canvas.min_font_size_for_lod = 0;
  await app.extensionManager.command.execute('Comfy.Canvas.FitView');
  app.canvas.setDirty(true, true);
  await new Promise(resolve => setTimeout(resolve, 300));
  await new Promise(resolve => requestAnimationFrame(() => requestAnimationFrame(resolve)));
  return true;
})()
"""


def show_whole_graph(page: Page) -> None:
    page.evaluate(SHOW_WHOLE_GRAPH_JS)
