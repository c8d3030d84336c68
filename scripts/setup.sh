#!/usr/bin/env bash
# Installs what building and testing zipvox needs on a Debian/Ubuntu machine; idempotent.
# Skips what is already there, so it is cheap to call before every build or test run.
set -euo pipefail

need_apt=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
# Build: pkg-config, libasound2-dev. Tests: a private PulseAudio as the microphone (pulseaudio,
# pulseaudio-utils for paplay/pactl, libasound2-plugins for the ALSA pulse plugin), systemd for
# `systemd-analyze verify`, sox for the resampled-input tests (tests/reliability.rs, scripts/eval-8k.sh).
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
