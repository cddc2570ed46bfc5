#!/usr/bin/env bash
# Prepares the real peers the integration tests talk to: a Python venv with
# aiosmtpd (tests/peers/smtp_peer.py) and the openssl CLI (tests/peers/make_certs.sh).
#
# Safe to run again and again (tests and CI may call it before every run): a
# stamp holding the hash of requirements.txt skips pip when nothing changed.
# Only the final "test peers ready: PATH" line goes to stdout, so callers can
# capture it; everything else goes to stderr.
#
# Environment: PYTHON (default python3) picks the interpreter for the venv.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
req="$root/tests/peers/requirements.txt"
stamp="$venv/.nhacviec-requirements.sha256"
python="${PYTHON:-python3}"

# Several test binaries may run this at the same moment; serialise them so
# none sees a half-built venv. The lock lives outside the work tree.
lock="${TMPDIR:-/tmp}/nhacviec-setup-test-peers.$(printf '%s' "$root" | cksum | cut -d' ' -f1).lock"
exec 9>"$lock"
flock 9

apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    # A fresh machine may have empty package lists: update only when needed.
    apt-get install -y -qq "$@" >&2 || { apt-get update -qq >&2 && apt-get install -y -qq "$@" >&2; }
}

if ! command -v openssl >/dev/null 2>&1; then
    apt_install openssl
fi

# A venv whose base interpreter moved away (e.g. a pyenv upgrade) still has a
# bin/python symlink but cannot run: treat it as missing.
if [[ -d "$venv" ]] && ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
    echo "setup-test-peers: $venv is broken, recreating" >&2
    rm -rf "$venv"
fi

if [[ ! -x "$venv/bin/python" ]]; then
    if ! "$python" -m venv "$venv" >&2; then
        # Debian's python3 ships venv without ensurepip until python3-venv is installed.
        echo "setup-test-peers: '$python -m venv' failed, installing python3-venv" >&2
        rm -rf "$venv"
        apt_install python3-venv
        "$python" -m venv "$venv" >&2
    fi
fi

want="$(sha256sum "$req" | cut -d' ' -f1)"
if [[ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]]; then
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req" >&2
    # Written only after pip succeeded, so a failed install is retried next time.
    printf '%s\n' "$want" >"$stamp"
fi

echo "test peers ready: $venv/bin/python"
