#!/usr/bin/env bash
# Installs what building and testing zipvox needs on a Debian/Ubuntu machine; idempotent.
# Skips what is already there, so it is cheap to call before every build or test run.
set -euo pipefail

need_apt=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
# Build: pkg-config, libasound2-dev. Tests: a private PulseAudio as the microphone (pulseaudio,
# pulseaudio-utils for paplay/pactl, libasound2-plugins for the ALSA pulse plugin), systemd for
# `systemd-analyze verify`.
# sox: test audio in other rates/channels (tests/wyoming.rs).
for p in pkg-config libasound2-dev pulseaudio pulseaudio-utils libasound2-plugins alsa-utils systemd sox; do
  have_pkg "$p" || need_apt+=("$p")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing ${need_apt[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "setup: cargo not found: install Rust with rustup (https://rustup.rs)" >&2; exit 1; }

# Python packages tests/wyoming.rs uses as real peers and clients: sherpa-onnx (reference keyword
# spotting), the `wyoming` package (pinned: the protocol version zipvox implements) with its HTTP
# gateway's needs (flask, asgiref, swagger-ui-py), wyoming-bench, python-zeroconf.
wyoming_pip=()
py_import() { python3 -c "import $1" 2>/dev/null; }
py_dist_version() { python3 -c "import importlib.metadata as m; print(m.version('$1'))" 2>/dev/null; }
[ "$(py_dist_version wyoming)" = 1.10.2 ] || wyoming_pip+=("wyoming==1.10.2")
[ -n "$(py_dist_version wyoming-bench)" ] || wyoming_pip+=(wyoming-bench)
[ -n "$(py_dist_version sherpa-onnx)" ] || wyoming_pip+=("sherpa-onnx==2.0.1")
py_import numpy || wyoming_pip+=(numpy)
py_import zeroconf || wyoming_pip+=(zeroconf)
py_import flask || wyoming_pip+=(flask)
py_import asgiref || wyoming_pip+=(asgiref)
py_import swagger_ui || wyoming_pip+=(swagger-ui-py)
if [ ${#wyoming_pip[@]} -gt 0 ]; then
  echo "setup: pip installing ${wyoming_pip[*]}" >&2
  # A CI machine's system Python may be marked externally managed (PEP 668); these are test tools.
  PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install -q "${wyoming_pip[@]}"
fi
