#!/usr/bin/env bash
# Installs what tests/test_browser.py needs: Debian's Chromium (/usr/bin/chromium). The test drives
# it with Playwright for Python (in requirements-dev.txt, which setup_host.sh installs) through
# its executable_path (harness/browser.py), so no browser is downloaded: never run
# `playwright install`. Idempotent; needs root (or sudo) for apt-get. Run it after
# scripts/setup_host.sh:
#
#   bash scripts/setup_host.sh && bash scripts/setup_browser.sh && .venv/bin/python -m pytest tests/test_browser.py
#
#   CHROMIUM   a Chromium/Chrome binary to use instead (then nothing is installed)
set -euo pipefail

if [ -n "${CHROMIUM:-}" ]; then
  "$CHROMIUM" --version 2>/dev/null
  exit 0
fi

if ! command -v chromium >/dev/null 2>&1; then
  sudo=""
  if [ "$(id -u)" != "0" ]; then
    sudo="sudo"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  # fonts-dejavu-core: a font for the canvas text in the screenshots.
  $sudo apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi
# (Debian's /usr/bin/chromium wrapper may print a harmless shell warning on stderr)
chromium --version 2>/dev/null
