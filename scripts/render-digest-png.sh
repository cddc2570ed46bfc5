#!/usr/bin/env bash
# Renders an HTML email (a weekly digest, a monthly report, a reminder) to a PNG with
# headless Chromium, so anyone can look at what a leader will see without sending mail.
#
# Usage: scripts/render-digest-png.sh IN.html OUT.png
#
# The whole pipeline, from the sample agency to a picture:
#
#   nhacviec import examples/sample-agency.json examples/sample-directives.csv
#   nhacviec digest --leader pct_a --at 2022-09-05T08:00:00+07:00 --html /tmp/digest.html
#   scripts/render-digest-png.sh /tmp/digest.html /tmp/digest.png
#
# The window is 700 px wide (the HTML is at most 680 px) and 1200 px tall; a longer
# digest is cut at the bottom: set HEIGHT (e.g. HEIGHT=3000) to see all of it, and
# WIDTH=400 to see it as on a phone.
#
# Installs Debian's chromium and fonts-noto-core (Vietnamese glyphs) with apt-get when
# they are missing (as root, or through sudo).
set -euo pipefail

if [ "$#" -ne 2 ]; then
    echo "usage: $0 IN.html OUT.png" >&2
    exit 2
fi
in="$1"
out="$2"
if [ ! -f "$in" ]; then
    echo "$0: no such file: $in" >&2
    exit 1
fi

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        echo "$0: need root (or sudo) to install: ${*: -2}" >&2
        exit 1
    fi
}

apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    # A fresh machine may have empty package lists: update only when needed.
    as_root apt-get install -y -qq "$@" >&2 ||
        { as_root apt-get update -qq >&2 && as_root apt-get install -y -qq "$@" >&2; }
}

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
dpkg-query -W -f='${Status}' fonts-noto-core 2>/dev/null | grep -q "install ok installed" ||
    missing+=(fonts-noto-core)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing ${missing[*]} …" >&2
    apt_install "${missing[@]}"
fi

in_abs="$(realpath "$in")"
out_abs="$(realpath -m "$out")"
profile="$(mktemp -d)"
log="$(mktemp)"
trap 'rm -rf "$profile" "$log"' EXIT

chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$profile" --hide-scrollbars \
    --window-size="${WIDTH:-700},${HEIGHT:-1200}" \
    --screenshot="$out_abs" "file://$in_abs" >"$log" 2>&1 || true

if [ ! -s "$out_abs" ]; then
    cat "$log" >&2
    echo "$0: chromium wrote no screenshot to $out_abs" >&2
    exit 1
fi
echo "$out_abs"
