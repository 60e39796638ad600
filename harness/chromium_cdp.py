"""Headless Chromium driven over the DevTools protocol (websocket-client only; no Playwright, no
browser download). Used by scripts/export_ui_workflows.py and tests/test_browser.py to open the
real ComfyUI frontend served by a local ComfyUI.

The browser is kept off the network: it sends everything but loopback to a dead proxy on
127.0.0.1, resolves no host name but localhost, and runs with Chromium's background services
(component updates, sync, safe browsing, metrics, translation, ...) switched off.
"""
from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import requests
import websocket

SETUP_HINT = "run scripts/setup_browser.sh (installs Debian's chromium)"

OFFLINE_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
    "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-default-apps", "--disable-extensions",
    "--disable-domain-reliability", "--disable-breakpad", "--disable-client-side-phishing-detection",
    "--metrics-recording-only", "--no-pings", "--mute-audio", "--password-store=basic",
    "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication,"
    "CertificateTransparencyComponentUpdater,InterestFeedContentSuggestions,NetworkTimeServiceQuerying",
    # Off the network: all but loopback goes to a proxy that is not there (Chromium never
    # falls back to a direct connection for a fixed proxy), and no name but localhost resolves.
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


class BrowserError(RuntimeError):
    pass


class Chromium:
    """One headless Chromium with a fresh profile and one page, driven over CDP."""

    def __init__(self, executable: str | None = None, width: int = 1600, height: int = 1000,
                 profile: Path | None = None):
        self.executable = executable or find_chromium()
        if not self.executable:
            raise BrowserError(f"no Chromium found: {SETUP_HINT}")
        self.width, self.height = width, height
        self._own_profile = profile is None
        self.profile = Path(profile or tempfile.mkdtemp(prefix="ssdiff-chromium-"))
        self.process: subprocess.Popen | None = None
        self.socket: websocket.WebSocket | None = None
        self._ids = itertools.count(1)
        self.events: list[dict] = []

    # -- life cycle ------------------------------------------------------------------------
    def start(self, timeout: float = 60) -> "Chromium":
        self.log = self.profile / "chromium.log"
        command = [self.executable, *OFFLINE_FLAGS, f"--user-data-dir={self.profile}",
                   f"--window-size={self.width},{self.height}", "--remote-debugging-address=127.0.0.1",
                   "--remote-debugging-port=0", "about:blank"]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not (port_file.exists() and port_file.read_text().count("\n") >= 1):
            if self.process.poll() is not None:
                raise BrowserError(f"Chromium exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise BrowserError(f"Chromium did not start within {timeout} s")
            time.sleep(0.1)
        port = int(port_file.read_text().split("\n")[0])
        targets = requests.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
        page = next(target for target in targets if target["type"] == "page")
        self.socket = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=timeout,
                                                  suppress_origin=True)
        self.send("Page.enable")
        self.send("Runtime.enable")
        self.send("Network.enable")
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False})
        return self

    def stop(self) -> None:
        if self.socket is not None:
            try:
                self.send("Browser.close", timeout=5)
            except Exception:  # noqa: BLE001 - closing anyway
                pass
            self.socket.close()
            self.socket = None
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._own_profile:
            shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> "Chromium":
        return self.start()

    def __exit__(self, *_) -> None:
        self.stop()

    # -- protocol --------------------------------------------------------------------------
    def send(self, method: str, params: dict | None = None, timeout: float = 60) -> dict:
        message_id = next(self._ids)
        self.socket.settimeout(timeout)
        self.socket.send(json.dumps({"id": message_id, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout
        while True:
            if time.monotonic() > deadline:
                raise BrowserError(f"no answer to {method} within {timeout} s")
            message = json.loads(self.socket.recv())
            if message.get("id") == message_id:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error']}")
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)

    def evaluate(self, expression: str, timeout: float = 60):
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.send("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                                 "returnByValue": True, "userGesture": True}, timeout)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise BrowserError(f"JavaScript error: {text}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 60, interval: float = 0.25):
        """Polls a JavaScript expression until it is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = self.evaluate(expression, timeout=max(5.0, timeout))
            except BrowserError:
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise BrowserError(f"timed out after {timeout} s waiting for: {expression}")
            time.sleep(interval)

    def navigate(self, url: str, timeout: float = 60) -> None:
        self.send("Page.navigate", {"url": url}, timeout)

    def screenshot(self, path: Path, format: str = "png", scale: float = 1.0, quality: int = 85) -> Path:
        """Saves what the page shows (PNG, or JPEG at `quality`), optionally scaled down."""
        params = {"format": format,
                  "clip": {"x": 0, "y": 0, "width": self.width, "height": self.height, "scale": scale}}
        if format == "jpeg":
            params["quality"] = quality
        data = self.send("Page.captureScreenshot", params)["data"]
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def drain_events(self, seconds: float = 0.2) -> None:
        """Reads the events that arrived while nothing was asked."""
        self.socket.settimeout(seconds)
        try:
            while True:
                message = json.loads(self.socket.recv())
                if "method" in message:
                    self.events.append(message)
        except (websocket.WebSocketTimeoutException, TimeoutError):
            pass

    def requested_urls(self) -> list[str]:
        return [event["params"]["request"]["url"] for event in self.events
                if event.get("method") == "Network.requestWillBeSent"]

    def console_errors(self) -> list[str]:
        errors = []
        for event in self.events:
            if event.get("method") == "Runtime.exceptionThrown":
                details = event["params"]["exceptionDetails"]
                errors.append(details.get("exception", {}).get("description") or details.get("text", ""))
            elif event.get("method") == "Runtime.consoleAPICalled" and event["params"]["type"] == "error":
                errors.append(" ".join(str(arg.get("value", arg.get("description", "")))
                                       for arg in event["params"]["args"]))
        return errors


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
(async (workflow, name) => {
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
"""`INSPECT_JS(workflow, name)`: loads a UI workflow as a user's file would be, then reports the
frontend's version, the node types (ids as strings), nodes whose type the frontend does not know,
nodes drawn in error (red), open dialogs (e.g. "missing nodes"), toasts and error overlays, the
graph as the frontend would save it, and the API prompt the frontend would queue."""


def open_comfyui(browser: Chromium, url: str, timeout: float = 120) -> None:
    """Opens the ComfyUI frontend at `url` and waits until its node types are registered."""
    browser.send("Page.addScriptToEvaluateOnNewDocument", {"source": _BEFORE_FRONTEND})
    browser.navigate(url)
    browser.wait_for(FRONTEND_READY, timeout)


def inspect_workflow(browser: Chromium, workflow: dict, name: str) -> dict:
    """Loads `workflow` (UI format) into the open frontend and returns INSPECT_JS's report."""
    report = browser.evaluate(f"{INSPECT_JS}({json.dumps(workflow)}, {json.dumps(name)})", timeout=120)
    return json.loads(report)


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


def open_error_details(browser: Chromium) -> dict[str, str] | None:
    """Opens the frontend's error details as a user clicking "View details" would; returns the
    text of each error group ("missing-model", "missing-node", ...), or None where the frontend
    has no such overlay (1.32)."""
    report = browser.evaluate(ERROR_DETAILS_JS)
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


def missing_model_candidates(browser: Chromium) -> list[dict] | None:
    """What frontend 1.49's Missing Models panel lists (name, directory, url, missing), or None
    where the frontend has no such panel (1.32)."""
    report = browser.evaluate(MISSING_MODELS_JS)
    return None if report is None else json.loads(report)


def close_side_panel(browser: Chromium) -> None:
    browser.evaluate(CLOSE_PANEL_JS)


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


def show_whole_graph(browser: Chromium) -> None:
    browser.evaluate(SHOW_WHOLE_GRAPH_JS)


def off_machine_responses(browser: Chromium) -> list[str]:
    """URLs of responses the page got from anywhere but this machine (requests the page tried
    and the dead proxy refused are not responses)."""
    browser.drain_events()
    urls = [event["params"]["response"]["url"] for event in browser.events
            if event.get("method") == "Network.responseReceived"]
    local = ("http://127.0.0.1", "http://localhost", "ws://127.0.0.1", "data:", "blob:", "about:")
    return [url for url in urls if not url.startswith(local)]
