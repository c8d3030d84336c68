#!/usr/bin/env bash
# Installs what building and testing zipvox needs on a Debian/Ubuntu machine; idempotent.
# Skips what is already there, so it is cheap to call before every build or test run.
set -euo pipefail

need_apt=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
# Build: pkg-config, libasound2-dev. Tests: a private PulseAudio as the microphone (pulseaudio,
# pulseaudio-utils for paplay/pactl, libasound2-plugins for the ALSA pulse plugin), systemd for
# `systemd-analyze verify`; the MQTT sink's tests: a real broker (mosquitto), mosquitto_sub/pub/passwd
# (mosquitto-clients; mosquitto_passwd ships with mosquitto) and openssl for the test certificates;
# sox: test audio in other rates/channels (tests/wyoming.rs, tests/reliability.rs, scripts/eval-8k.sh).
for p in pkg-config libasound2-dev pulseaudio pulseaudio-utils libasound2-plugins alsa-utils systemd \
         mosquitto mosquitto-clients openssl sox; do
  have_pkg "$p" || need_apt+=("$p")
done
# Model downloads (models/fetch.sh; scripts/quickstart.sh on a clone without ../shared):
# curl, and bzip2 for the release tarballs.
for p in curl bzip2; do
  have_pkg "$p" || need_apt+=("$p")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing ${need_apt[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "setup: cargo not found: install Rust with rustup (https://rustup.rs)" >&2; exit 1; }

# Python packages the tests run as references, pinned where the result depends on the version:
# tests/pinyin.rs, tests/chinese_model.rs, tests/units.rs and scripts/eval-*.sh run sherpa-onnx
# (and its text2token with pypinyin: scripts/pinyin_reference.py; the dictionary in
# packaging/pinyin.dict is generated from the same pypinyin); the FFT's unit test
# (runtime/frontend/fft.rs) runs kaldi-native-fbank 1.23.0's Rfft, the build whose bits
# sherpa-onnx 2.0.1's features have. Each is installed only when missing or at another version.
need_pip=()
py_has() { # py_has DIST [VERSION]
  python3 -c "import importlib.metadata as m, sys; v = m.version('$1'); sys.exit(0 if '${2:-}' in ('', v) else 1)" 2>/dev/null
}
command -v python3 >/dev/null || { echo "setup: python3 not found: install python3 and pip" >&2; exit 1; }
for p in pypinyin==0.55.0 sherpa-onnx==2.0.1 kaldi-native-fbank==1.23.0 sentencepiece numpy click; do
  py_has "${p%%==*}" "$(echo "$p" | sed -n 's/.*==//p')" || need_pip+=("$p")
done
if [ ${#need_pip[@]} -gt 0 ]; then
  echo "setup: pip installing ${need_pip[*]}" >&2
  # A CI machine's system Python may be marked externally managed (PEP 668); these are test tools.
  PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install -q "${need_pip[@]}"
fi

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
