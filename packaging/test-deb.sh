#!/usr/bin/env bash
# Checks a zipvox .deb built by scripts/build-deb.sh: the file list (paths, modes, root
# ownership), the control fields, the conffile, that the packaged unit/config are the repository's,
# that the binary is for the package's architecture (and runs under qemu when it is available),
# and the maintainer scripts, run against a scratch root with stubbed system commands: fresh
# install (user, groups audio/dialout, enable, no start without a model), install with a model
# (start), upgrade (try-restart), remove and purge (models kept).
#
#   packaging/test-deb.sh target/debian/zipvox_0.1.0_arm64.deb
set -euo pipefail
cd "$(dirname "$0")/.."
deb=${1:?usage: packaging/test-deb.sh DEB}
passed=0
failed=0
check() { # check DESCRIPTION COMMAND...
  local what=$1; shift
  if "$@" >/dev/null 2>&1; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAILED: $what" >&2; fi
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

dpkg-deb -c "$deb" > "$tmp/list"
echo "package contents ($deb):"
sed 's/^/  /' "$tmp/list"
# `dpkg-deb -c` lines: mode owner/group size date time path
entry() { awk -v p="./$1" '$6 == p || $6 == p"/" {print $1, $2}' "$tmp/list"; }
expect() { # expect PATH MODE
  local got; got=$(entry "$1")
  check "$1 is $2 root/root (got '${got:-absent}')" test "$got" = "$2 root/root"
}
expect usr/bin/zipvox -rwxr-xr-x
expect lib/systemd/system/zipvox.service -rw-r--r--
expect lib/systemd/system/zipvox-wyoming.service -rw-r--r--
expect etc/zipvox/zipvox.toml -rw-r--r--
expect usr/lib/sysusers.d/zipvox.conf -rw-r--r--
expect var/lib/zipvox/models drwxr-xr-x
expect var/lib/zipvox/models/README -rw-r--r--
expect usr/share/zipvox/pinyin.dict -rw-r--r--
expect usr/share/doc/zipvox/copyright -rw-r--r--
expect usr/share/doc/zipvox/changelog.Debian.gz -rw-r--r--
expect usr/share/doc/zipvox/README.md -rw-r--r--
for b in rpi4 rpi5 jetson; do expect "usr/share/doc/zipvox/board-$b.md" -rw-r--r--; done
expect usr/share/doc/zipvox/examples/99-zipvox-serial.rules -rw-r--r--
expect usr/share/doc/zipvox/examples/asound.conf -rw-r--r--
check "every entry owned by root/root" test -z "$(awk '$2 != "root/root"' "$tmp/list")"
check "nothing outside /usr /lib /etc /var" test -z "$(awk '{print $6}' "$tmp/list" | grep -vE '^\./((usr|lib|etc|var)(/.*)?)?$')"

field() { dpkg-deb -f "$deb" "$1"; }
arch=$(field Architecture)
check "Package: zipvox" test "$(field Package)" = zipvox
check "Version matches Cargo.toml" test "$(field Version)" = "$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
check "Architecture is arm64/armhf/amd64 (got $arch)" grep -qxE 'arm64|armhf|amd64' <<<"$arch"
check "Depends on libc6 (>= …)" grep -qE 'libc6 \(>= 2\.[0-9]+\)' <<<"$(field Depends)"
check "Depends on libasound2" grep -q 'libasound2' <<<"$(field Depends)"
check "Depends on adduser" grep -q 'adduser' <<<"$(field Depends)"
echo "control: $(field Package) $(field Version) $(field Architecture); Depends: $(field Depends)"

mkdir "$tmp/x" "$tmp/ctl"
dpkg-deb -x "$deb" "$tmp/x"
dpkg-deb -e "$deb" "$tmp/ctl"
check "conffiles lists /etc/zipvox/zipvox.toml" grep -qx /etc/zipvox/zipvox.toml "$tmp/ctl/conffiles"
check "packaged unit is board/zipvox.service" cmp "$tmp/x/lib/systemd/system/zipvox.service" board/zipvox.service
check "packaged Wyoming unit is board/zipvox-wyoming.service" cmp "$tmp/x/lib/systemd/system/zipvox-wyoming.service" board/zipvox-wyoming.service
check "packaged config is board/zipvox.toml" cmp "$tmp/x/etc/zipvox/zipvox.toml" board/zipvox.toml
check "packaged pinyin dictionary is packaging/pinyin.dict" cmp "$tmp/x/usr/share/zipvox/pinyin.dict" packaging/pinyin.dict
check "unit runs /usr/bin/zipvox" grep -q '^ExecStart=/usr/bin/zipvox ' board/zipvox.service
check "unit runs as user zipvox" grep -qx 'User=zipvox' board/zipvox.service
check "default config points at /var/lib/zipvox/models" grep -q '^dir = "/var/lib/zipvox/models/' board/zipvox.toml
check "sysusers: user zipvox in group audio" grep -qE '^m +zipvox +audio' "$tmp/x/usr/lib/sysusers.d/zipvox.conf"
for s in postinst prerm postrm; do
  check "$s is executable" test -x "$tmp/ctl/$s"
  check "$s parses (sh -n)" sh -n "$tmp/ctl/$s"
done

case $arch in
  arm64) machine=AArch64; qemu=(qemu-aarch64 -cpu cortex-a72) ;;
  armhf) machine=ARM; qemu=(qemu-arm -cpu cortex-a7) ;;
  *) machine=X86-64; qemu=() ;;
esac
check "binary is a $machine ELF" grep -q "Machine:.* $machine *$" <<<"$(readelf -h "$tmp/x/usr/bin/zipvox" 2>/dev/null || aarch64-linux-gnu-readelf -h "$tmp/x/usr/bin/zipvox")"
if [ ${#qemu[@]} -eq 0 ] || command -v "${qemu[0]}" >/dev/null; then
  v=$("${qemu[@]}" "$tmp/x/usr/bin/zipvox" --version 2>&1 || true)
  check "packaged binary runs (zipvox --version: '$v')" grep -q "^zipvox $(field Version)$" <<<"$v"
fi

# Maintainer scripts against a scratch root. System commands are stubs that log their arguments.
root=$tmp/root
stub=$tmp/stub
mkdir -p "$root/etc/zipvox" "$root/var/lib/zipvox/models" "$stub"
cp "$tmp/x/etc/zipvox/zipvox.toml" "$root/etc/zipvox/"
for c in adduser systemd-sysusers deb-systemd-helper deb-systemd-invoke systemctl chown chmod; do
  printf '#!/bin/sh\necho "%s $*" >> "%s/log"\n' "$c" "$tmp" > "$stub/$c"
done
# getent: no zipvox user yet, groups audio and dialout exist; id: member of nothing.
printf '#!/bin/sh\n[ "$1" = group ] && { echo "$2:x:29:"; exit 0; }\nexit 2\n' > "$stub/getent"
printf '#!/bin/sh\necho zipvox\n' > "$stub/id"
chmod +x "$stub"/*
run() { : > "$tmp/log"; DPKG_ROOT=$root PATH=$stub:$PATH sh "$tmp/ctl/$1" "${@:2}" 2>"$tmp/err"; }
logged() { grep -q "$1" "$tmp/log"; }

check "postinst configure (fresh install) succeeds" run postinst configure
check "fresh install: adduser --system zipvox" logged '^adduser --system --group .* zipvox$'
check "fresh install: zipvox added to audio" logged '^adduser zipvox audio$'
check "fresh install: zipvox added to dialout" logged '^adduser zipvox dialout$'
check "fresh install: unit enabled" logged '^deb-systemd-helper enable zipvox.service$'
check "fresh install: state dir owned by zipvox" logged '^chown zipvox:zipvox .*/var/lib/zipvox '
check "fresh install without systemd running: no start" test -z "$(grep deb-systemd-invoke "$tmp/log")"
mkdir -p "$root/run/systemd/system"
check "postinst configure, systemd, no model" run postinst configure
check "no model: not started" test -z "$(grep deb-systemd-invoke "$tmp/log")"
check "no model: says where models go" grep -q '/var/lib/zipvox/models' "$tmp/err"
mkdir -p "$root/var/lib/zipvox/models/m1"
touch "$root/var/lib/zipvox/models/m1/tokens.txt"
ln -s m1 "$root/var/lib/zipvox/models/current"
check "postinst configure, systemd, model in place" run postinst configure
check "model in place: started" logged '^deb-systemd-invoke start zipvox.service$'
check "postinst upgrade" run postinst configure 0.0.9
check "upgrade: try-restart, not enable" sh -c "grep -q '^deb-systemd-invoke try-restart zipvox.service$' '$tmp/log' && ! grep -q 'helper enable' '$tmp/log'"
check "prerm remove stops" sh -c "DPKG_ROOT='$root' PATH='$stub:$PATH' sh '$tmp/ctl/prerm' remove && grep -q '^deb-systemd-invoke stop zipvox.service$' '$tmp/log'"
check "prerm remove stops the Wyoming server" grep -q '^deb-systemd-invoke stop zipvox-wyoming.service$' "$tmp/log"
check "postrm remove masks" sh -c ": > '$tmp/log'; DPKG_ROOT='$root' PATH='$stub:$PATH' sh '$tmp/ctl/postrm' remove && grep -q '^deb-systemd-helper mask zipvox.service$' '$tmp/log'"
touch "$root/var/lib/zipvox/record.wav"
check "postrm purge" run postrm purge
check "purge: state removed" test ! -e "$root/var/lib/zipvox/record.wav"
check "purge: models kept" test -f "$root/var/lib/zipvox/models/m1/tokens.txt"
check "postinst rejects unknown actions" sh -c "! DPKG_ROOT='$root' PATH='$stub:$PATH' sh '$tmp/ctl/postinst' bogus 2>/dev/null"

echo "test-deb: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
