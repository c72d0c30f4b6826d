#!/usr/bin/env bash
# Install the Debian packages tether needs (bubblewrap, ripgrep, docker.io, debootstrap)
# when running as root and any is missing. Does nothing otherwise.
set -euo pipefail
if [ "$(id -u)" != 0 ]; then
    echo "system-deps: not root; install bubblewrap ripgrep docker.io debootstrap yourself if tests need them"
    exit 0
fi
missing=()
command -v bwrap >/dev/null || missing+=(bubblewrap)
command -v rg >/dev/null || missing+=(ripgrep)
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [ ${#missing[@]} -eq 0 ]; then
    echo "system-deps: all present"
    exit 0
fi
echo "system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
