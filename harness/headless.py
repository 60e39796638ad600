"""Runs ComfyUI headless on 127.0.0.1 and queues API-format workflows on it. Shared by the
README's main job (scripts/run_main_job.py) and the test suite."""
from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent


def default_host() -> Path:
    """The ComfyUI root to run: $SSDIFF_HOST, else the host scripts/setup_host.sh built for the
    virtual environment this Python runs in (it writes <venv>/ssdiff-host), else .host/ComfyUI."""
    if os.environ.get("SSDIFF_HOST"):
        return Path(os.environ["SSDIFF_HOST"]).resolve()
    marker = Path(sys.prefix) / "ssdiff-host"
    if marker.is_file():
        return Path(marker.read_text().strip()).resolve()
    return (REPO / ".host" / "ComfyUI").resolve()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _end_with_parent() -> None:
    """Linux: the server gets SIGTERM when the thread that started it ends, even by SIGKILL (a Ray
    actor killed at shutdown, a test runner stopped), so that no ComfyUI is left running. Start
    servers from a thread that lives as long as they should (the main thread, an actor's
    constructor)."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


PR_SET_PDEATHSIG = 1


class ComfyServer:
    """`main.py --cpu` in a work folder of its own (input/, output/, user/, temp/, server.log),
    reading extra model folders from `models_root` (laid out like ComfyUI's models/) and custom
    nodes also from `custom_nodes`, a folder of node packs; computing on `threads` CPU threads
    (None: as many as torch takes by default)."""

    def __init__(self, host_root: Path, work: Path, models_root: Path | None = None,
                 python: str = sys.executable, extra_args: tuple[str, ...] = (),
                 custom_nodes: Path | None = None, threads: int | None = None):
        self.host_root, self.work = Path(host_root), Path(work)
        self.dirs = {name: self.work / name for name in ("input", "output", "user", "temp")}
        for path in self.dirs.values():
            path.mkdir(parents=True, exist_ok=True)
        self.log = self.work / "server.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
                   "--disable-auto-launch", "--database-url", "sqlite:///:memory:",
                   "--input-directory", str(self.dirs["input"]),
                   "--output-directory", str(self.dirs["output"]),
                   "--user-directory", str(self.dirs["user"]),
                   "--temp-directory", str(self.dirs["temp"]), *extra_args]
        sections = []
        if models_root is not None:
            folders = "".join(f"  {child.name}: {child.name}\n" for child in sorted(Path(models_root).iterdir())
                              if child.is_dir())
            sections.append(f"ssdiff_run:\n  base_path: {models_root}\n{folders}")
        if custom_nodes is not None:
            sections.append(f"ssdiff_run_nodes:\n  custom_nodes: {Path(custom_nodes).resolve()}\n")
        if sections:
            config = self.work / "extra_model_paths.yaml"
            config.write_text("".join(sections))
            command += ["--extra-model-paths-config", str(config)]
        self.command = command
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if threads is not None:
            self.env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        self.process: subprocess.Popen | None = None

    @property
    def input_dir(self) -> Path:
        return self.dirs["input"]

    @property
    def output_dir(self) -> Path:
        return self.dirs["output"]

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def start(self, timeout: float = 180) -> "ComfyServer":
        with self.log.open("wb") as log_file:
            self.process = subprocess.Popen(self.command, cwd=self.host_root, stdout=log_file,
                                            stderr=subprocess.STDOUT, env=self.env,
                                            preexec_fn=_end_with_parent if sys.platform == "linux" else None)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self.process.returncode}:\n{self.log_text()}")
            try:
                if requests.get(f"{self.url}/system_stats", timeout=2).ok:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"ComfyUI did not answer within {timeout} s:\n{self.log_text()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> "ComfyServer":
        return self.start()

    def __exit__(self, *_) -> None:
        self.stop()

    def queue(self, prompt: dict, client_id: str | None = None) -> requests.Response:
        """POSTs to /prompt; progress and status messages go to the websocket of `client_id`."""
        body = {"prompt": prompt, "client_id": client_id or uuid.uuid4().hex}
        return requests.post(f"{self.url}/prompt", json=body, timeout=30)

    def wait_for(self, prompt_id: str, timeout: float = 600, raise_on_error: bool = True) -> dict:
        """The /history entry of a finished prompt (raises on an execution error unless told not to)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            history = requests.get(f"{self.url}/history/{prompt_id}", timeout=10).json()
            entry = history.get(prompt_id)
            if entry and entry.get("status", {}).get("completed") is not None:
                if raise_on_error and entry["status"].get("status_str") == "error":
                    messages = [m for m in entry["status"].get("messages", []) if m[0] == "execution_error"]
                    raise RuntimeError(f"prompt {prompt_id} failed: {json.dumps(messages)[:2000]}")
                return entry
            time.sleep(0.1)
        raise TimeoutError(f"prompt {prompt_id} did not finish within {timeout} s")

    def run(self, prompt: dict, timeout: float = 600) -> dict:
        response = self.queue(prompt)
        if response.status_code != 200:
            raise RuntimeError(f"ComfyUI refused the prompt ({response.status_code}): {response.text[:2000]}")
        return self.wait_for(response.json()["prompt_id"], timeout)

    def output_images(self, entry: dict) -> list[Path]:
        paths = []
        for node_output in entry.get("outputs", {}).values():
            for image in node_output.get("images", []):
                if image.get("type") == "output":
                    paths.append(self.output_dir / image.get("subfolder", "") / image["filename"])
        return paths
