# Source this file from the repository root to build Reverie with CUDA:
#
#   . scripts/cuda-env.sh
#   nice -n 19 cargo build -p xtask --features cuda --release
#
# It loads the environment that `cargo xtask cuda-toolchain` wrote (the
# toolchain folder is $REVERIE_CUDA_DIR, default ~/.cache/reverie/cuda) and
# keeps CUDA builds in their own target folder, target/cuda (git-ignored
# through target/), so they never overwrite the normal build's binaries.
# See docs/cuda.md.

_reverie_cuda_dir="${REVERIE_CUDA_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/reverie/cuda}"
if [ ! -f "$_reverie_cuda_dir/env.sh" ]; then
    echo "no CUDA toolchain in $_reverie_cuda_dir: run \`cargo xtask cuda-toolchain\` first" \
        "(or set REVERIE_CUDA_DIR to where you installed it)" >&2
    unset _reverie_cuda_dir
    return 1 2>/dev/null || exit 1
fi
. "$_reverie_cuda_dir/env.sh"
_reverie_root="$(git rev-parse --show-toplevel 2>/dev/null || pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$_reverie_root/target/cuda}"
echo "CUDA build environment: CUDA_ROOT=$CUDA_ROOT, CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP," \
    "CARGO_TARGET_DIR=$CARGO_TARGET_DIR, CARGO_BUILD_TARGET=${CARGO_BUILD_TARGET:-host}" >&2
unset _reverie_cuda_dir _reverie_root
