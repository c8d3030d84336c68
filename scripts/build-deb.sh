#!/usr/bin/env bash
# Builds the Debian package of zipvox for a board (arm64 by default: 64-bit Raspberry Pi OS,
# Debian, Ubuntu / Jetson Linux) with dpkg-deb alone: no cargo-deb, no debhelper.
#
#   scripts/build-deb.sh                       cross-builds the release binary (scripts/build-release.sh:
#                                              profile-guided, trained under qemu) and packages it
#   scripts/build-deb.sh --plain               a plain `cargo build --release` instead (faster build;
#                                              the binary maps ~9 MiB more at run time, same speed)
#   scripts/build-deb.sh --no-build BINARY     packages an existing binary
#   scripts/build-deb.sh --arch armhf          32-bit Raspberry Pi OS (armv7 build)
#
# Prints the path of the .deb (target/debian/zipvox_<version>_<arch>.deb) on stdout.
#
# Contents:
#   /usr/bin/zipvox
#   /lib/systemd/system/zipvox.service          board/zipvox.service
#   /lib/systemd/system/zipvox-wyoming.service  board/zipvox-wyoming.service (Home Assistant; not enabled)
#   /etc/zipvox/zipvox.toml                     board/zipvox.toml (conffile: local edits survive upgrades)
#   /usr/lib/sysusers.d/zipvox.conf             the system user zipvox, in group audio (and dialout)
#   /usr/share/zipvox/pinyin.dict               Chinese → pinyin readings for plain-text keywords of
#                                               pinyin models (packaging/pinyin.dict, from pypinyin)
#   /var/lib/zipvox/models/                     where models go (one directory per model,
#                                               `current` a symlink to the one in use)
#   /usr/share/doc/zipvox/                      copyright, README.md, board guides, presets and
#                                               the udev/ALSA examples
# Maintainer scripts (packaging/debian/): postinst creates the user and enables the service
# (started only once a model is in place), prerm stops it, postrm cleans up on purge.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

arch=arm64
build=1
plain=0
bin=""
while [ $# -gt 0 ]; do
  case $1 in
    --arch) arch=$2; shift 2 ;;
    --no-build) build=0; bin=$2; shift 2 ;;
    --plain) plain=1; shift ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "build-deb: unknown argument $1" >&2; exit 2 ;;
  esac
done
case $arch in
  arm64) triple=aarch64-unknown-linux-gnu; readelf=aarch64-linux-gnu-readelf; machine=AArch64 ;;
  armhf) triple=armv7-unknown-linux-gnueabihf; readelf=arm-linux-gnueabihf-readelf; machine=ARM ;;
  amd64) triple=x86_64-unknown-linux-gnu; readelf=readelf; machine=X86-64 ;;
  *) echo "build-deb: unsupported architecture $arch (arm64, armhf, amd64)" >&2; exit 2 ;;
esac
command -v "$readelf" >/dev/null || readelf=readelf

# The files the lead's service work provides: fail clearly rather than ship a package without them.
for f in board/zipvox.service board/zipvox-wyoming.service board/zipvox.toml; do
  [ -f "$f" ] || { echo "build-deb: $f is missing (the systemd unit and the default config are packaged from board/)" >&2; exit 1; }
done
for f in packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm packaging/sysusers.d/zipvox.conf packaging/pinyin.dict; do
  [ -f "$f" ] || { echo "build-deb: $f is missing" >&2; exit 1; }
done

if [ "$build" = 1 ] && [ "$plain" = 1 ]; then
  cargo build --release --target "$triple" --quiet >&2
  bin=${CARGO_TARGET_DIR:-$ROOT/target}/$triple/release/zipvox
elif [ "$build" = 1 ]; then
  bin=$(bash scripts/build-release.sh --target "$triple")
fi
[ -x "$bin" ] || { echo "build-deb: no executable at $bin" >&2; exit 1; }
"$readelf" -h "$bin" 2>/dev/null | grep -q "Machine:.* $machine *$" \
  || { echo "build-deb: $bin is not a $machine executable" >&2; exit 1; }

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
[ -n "$version" ] || { echo "build-deb: no version in Cargo.toml" >&2; exit 1; }

# Oldest glibc the binary accepts (highest GLIBC_x.y symbol version it needs).
glibc=$("$readelf" -V --wide "$bin" 2>/dev/null | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)
dynamic=$("$readelf" -d "$bin")
needed=$(echo "$dynamic" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
# Packed relocations (scripts/build-release.sh) need a loader that applies them: glibc 2.36.
if echo "$dynamic" | grep -q '(RELR)' && [ "$(printf '%s\n' "${glibc:-2.31}" 2.36 | sort -V | tail -1)" = 2.36 ]; then
  glibc=2.36
fi
depends="libc6 (>= ${glibc:-2.31})"
if echo "$needed" | grep -q '^libasound\.so'; then
  # Debian trixie renamed the library package (time64); on arm64 it still provides the old name.
  depends="$depends, libasound2 (>= 1.0.27) | libasound2t64"
fi
if echo "$needed" | grep -q '^libgcc_s\.so'; then
  depends="$depends, libgcc-s1"
fi
depends="$depends, adduser"

out=${CARGO_TARGET_DIR:-$ROOT/target}/debian
stage=$out/zipvox_${version}_${arch}
rm -rf "$stage"
mkdir -p "$stage/DEBIAN" "$stage/usr/bin" "$stage/lib/systemd/system" "$stage/etc/zipvox" \
  "$stage/usr/lib/sysusers.d" "$stage/var/lib/zipvox/models" "$stage/usr/share/doc/zipvox/examples" \
  "$stage/usr/share/zipvox"

# Binary: stripped of the line tables (kept in target/ for symbolizing crash reports).
strip_tool=${readelf%readelf}strip
if command -v "$strip_tool" >/dev/null; then
  "$strip_tool" --strip-debug -o "$stage/usr/bin/zipvox" "$bin"
else
  cp "$bin" "$stage/usr/bin/zipvox"
fi
chmod 0755 "$stage/usr/bin/zipvox"
install -m 0644 board/zipvox.service "$stage/lib/systemd/system/zipvox.service"
install -m 0644 board/zipvox-wyoming.service "$stage/lib/systemd/system/zipvox-wyoming.service"
install -m 0644 board/zipvox.toml "$stage/etc/zipvox/zipvox.toml"
install -m 0644 packaging/sysusers.d/zipvox.conf "$stage/usr/lib/sysusers.d/zipvox.conf"
install -m 0644 packaging/models-README "$stage/var/lib/zipvox/models/README"
# Found by the binary as <exe>/../share/zipvox/pinyin.dict (runtime/model/pinyin.rs).
install -m 0644 packaging/pinyin.dict "$stage/usr/share/zipvox/pinyin.dict"

doc=$stage/usr/share/doc/zipvox
install -m 0644 packaging/copyright "$doc/copyright"
install -m 0644 README.md "$doc/README.md"
for b in rpi4 rpi5 jetson; do
  [ -f "board/$b/README.md" ] && install -m 0644 "board/$b/README.md" "$doc/board-$b.md"
  [ -f "board/$b/zipvox.toml" ] && install -m 0644 "board/$b/zipvox.toml" "$doc/examples/zipvox-$b.toml"
done
[ -f board/README.md ] && install -m 0644 board/README.md "$doc/board.md"
for f in board/udev/* board/alsa/*; do
  [ -f "$f" ] && install -m 0644 "$f" "$doc/examples/$(basename "$f")"
done
printf 'zipvox (%s) unstable; urgency=medium\n\n  * Package built from the zipvox repository (scripts/build-deb.sh).\n\n -- zipvox maintainers <zipvox@localhost>  %s\n' \
  "$version" "$(date -R -d "@${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}")" \
  | gzip -9n > "$doc/changelog.Debian.gz"
chmod 0644 "$doc/changelog.Debian.gz"

for s in postinst prerm postrm; do
  install -m 0755 "packaging/debian/$s" "$stage/DEBIAN/$s"
done
echo "/etc/zipvox/zipvox.toml" > "$stage/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat > "$stage/DEBIAN/control" <<EOF
Package: zipvox
Version: $version
Architecture: $arch
Maintainer: zipvox maintainers <zipvox@localhost>
Installed-Size: $size
Depends: $depends
Section: sound
Priority: optional
Homepage: https://github.com/zipvox/zipvox
Description: on-device streaming speech recognition for small boards
 zipvox runs sherpa-onnx streaming Zipformer transducers (int8 or fp32 ONNX)
 on the CPU and serves live transcripts from an ALSA microphone on a UNIX
 socket (/run/zipvox/zipvox.sock) and optionally a serial line. Built for
 Raspberry Pi 4 and 5 and Jetson Orin; dot-product instructions are used
 when the CPU has them (detected at run time).
 .
 zipvox-wyoming.service (not enabled by default) serves speech-to-text and
 wake words to Home Assistant over the Wyoming protocol (port 10300).
 .
 Models are not included: put one under /var/lib/zipvox/models/ and point
 /etc/zipvox/zipvox.toml at it.
EOF

# Reproducible-ish: fixed mtimes, root ownership regardless of who builds.
find "$stage" -exec touch -h -d "@${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}" {} +
deb=$out/zipvox_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "$deb"
