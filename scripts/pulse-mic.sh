#!/usr/bin/env bash
# A private PulseAudio server that acts as a microphone, for tests on machines without a sound
# card: whatever is played to its null sink `zvmic` comes back, paced in real time, from the
# sink's monitor source `zvmic.monitor`, which ALSA programs (zipvox, arecord) capture through
# the `pulse` ALSA plugin (libasound2-plugins).
#
#   scripts/pulse-mic.sh start DIR    start it (everything lives in DIR), wait until it answers
#   scripts/pulse-mic.sh stop DIR     stop it (TERM, then KILL after 5 s)
#   scripts/pulse-mic.sh status DIR   exit 0 if it answers
#
# After `start`:
#   - DIR/pulse/native is the server socket; play into the microphone with
#       PULSE_SERVER=unix:DIR/pulse/native paplay -d zvmic clip.wav
#   - DIR/.asoundrc defines `pcm.zvmic` (capture from the monitor) and `ctl.zvmic`:
#       HOME=DIR arecord -D zvmic -f S16_LE -r 16000 -c 1 -d 5 out.wav
#     or include it from another ALSA config (`<DIR/.asoundrc>`).
#   - DIR/pulse.log has the server's log, DIR/pulse.pid its pid.
#
# The sink runs at ZV_PULSE_RATE (16000), ZV_PULSE_CHANNELS (1), ZV_PULSE_FORMAT (s16le): a
# 16 kHz mono 16-bit clip played into it comes back unchanged (no resampling, volume 100 %).
#
# Notes on running it (checked with PulseAudio 16.1):
#   - As root it only warns ("This program is not intended to be run as root"); `--system` is
#     NOT needed (that mode wants a `pulse` user and a system-wide socket). What matters is a
#     private XDG_RUNTIME_DIR (the socket goes to $XDG_RUNTIME_DIR/pulse/native) and HOME (the
#     cookie and state files), both set to DIR so nothing touches the user's session.
#   - `-n` skips the default script (no hardware detection, no module-suspend-on-idle, so the
#     monitor streams continuously), `--exit-idle-time=-1` keeps it up without clients,
#     `--disallow-exit` ignores clients asking it to quit, `--use-pid-file=no` avoids the
#     per-user pid file (several servers may run at once), and `auth-anonymous=1` lets any
#     local client in without the cookie (the ALSA plugin in a test process has another HOME).
#   - DIR/pulse/client.conf says `autospawn = no`, so clients pointed at DIR never start a
#     server of their own when this one is down (the tests kill it on purpose).
#   - Unix socket paths are limited to 107 bytes: keep DIR short (e.g. under /tmp).
set -euo pipefail

usage() {
    echo "usage: $0 start|stop|status DIR" >&2
    exit 2
}

[[ $# -eq 2 ]] || usage
cmd=$1
mkdir -p "$2"
dir=$(cd "$2" && pwd)
sock="$dir/pulse/native"
pidfile="$dir/pulse.pid"

client_env() {
    env XDG_RUNTIME_DIR="$dir" HOME="$dir" PULSE_SERVER="unix:$sock" "$@"
}

answers() {
    client_env timeout 5 pactl info >/dev/null 2>&1
}

running_pid() {
    [[ -f $pidfile ]] || return 1
    local pid
    pid=$(cat "$pidfile")
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

case $cmd in
start)
    for tool in pulseaudio pactl; do
        command -v "$tool" >/dev/null || {
            echo "$0: '$tool' not found; install pulseaudio and pulseaudio-utils" >&2
            exit 1
        }
    done
    if pid=$(running_pid); then
        echo "$0: a server already runs for $dir (pid $pid); stop it first" >&2
        exit 1
    fi
    if [[ ${#sock} -gt 107 ]]; then
        echo "$0: socket path $sock is too long for a unix socket; use a shorter DIR" >&2
        exit 1
    fi
    mkdir -p "$dir/pulse"
    chmod 700 "$dir" "$dir/pulse"
    echo "autospawn = no" >"$dir/pulse/client.conf"
    rm -f "$sock" # a stale socket from a killed server makes bind() fail
    rate=${ZV_PULSE_RATE:-16000}
    channels=${ZV_PULSE_CHANNELS:-1}
    format=${ZV_PULSE_FORMAT:-s16le}
    XDG_RUNTIME_DIR="$dir" HOME="$dir" PULSE_CLIENTCONFIG="$dir/pulse/client.conf" \
        nohup pulseaudio -n --daemonize=no --exit-idle-time=-1 --disallow-exit \
        --use-pid-file=no --log-target=stderr \
        --load="module-native-protocol-unix auth-anonymous=1" \
        --load="module-null-sink sink_name=zvmic rate=$rate channels=$channels format=$format" \
        </dev/null >"$dir/pulse.log" 2>&1 &
    echo $! >"$pidfile"
    for _ in $(seq 100); do
        if answers; then
            cat >"$dir/.asoundrc" <<EOF
# Written by zipvox scripts/pulse-mic.sh: the private PulseAudio in $dir as a microphone.
pcm.zvmic {
    type pulse
    server "unix:$sock"
    device "zvmic.monitor"
    hint { show on description "zipvox test microphone (PulseAudio null sink monitor)" }
}
ctl.zvmic {
    type pulse
    server "unix:$sock"
}
EOF
            echo "pulseaudio for $dir ready (pid $(cat "$pidfile")), socket $sock"
            exit 0
        fi
        if ! running_pid >/dev/null; then
            break
        fi
        sleep 0.1
    done
    echo "$0: pulseaudio did not come up; its log ($dir/pulse.log):" >&2
    cat "$dir/pulse.log" >&2 || true
    if pid=$(running_pid); then kill "$pid" 2>/dev/null || true; fi
    exit 1
    ;;
stop)
    if pid=$(running_pid); then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile" "$sock"
    ;;
status)
    answers
    ;;
*)
    usage
    ;;
esac
