#!/usr/bin/env bash
# Reverie's test command: installs what the tests need on a fresh Debian
# machine (run as root), then checks formatting, lints and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages: the General MIDI SoundFont the dataset renderer plays,
# ALSA/JACK headers for the plugin's standalone build, and for the editor
# test a virtual X server, software OpenGL, xwd (screenshots) and xrdb
# (display scaling).
need=()
[ -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ] || need+=(fluid-soundfont-gm)
for pkg in pkg-config libasound2-dev libjack-jackd2-dev \
    xvfb x11-apps x11-xserver-utils libgl1 libgl1-mesa-dri libx11-6 libx11-xcb1 libxcb1 libxcursor1; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing packages: ${need[*]}; run as root or: sudo apt-get install -y ${need[*]}" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
