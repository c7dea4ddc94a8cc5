#!/usr/bin/env bash
# Reverie's test command: installs what the tests need on a fresh Debian
# machine (run as root), then checks formatting, lints and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages: the General MIDI SoundFont the dataset renderer plays,
# and ALSA/JACK headers for the plugin's standalone build.
need=()
[ -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ] || need+=(fluid-soundfont-gm)
for pkg in pkg-config libasound2-dev libjack-jackd2-dev; do
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
