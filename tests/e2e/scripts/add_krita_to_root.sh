#!/usr/bin/env bash
# Add Debian trixie's Krita (5.2.9, Python 3.13) and xdotool to the GIMP 3 chroot built by build_gimp_root.sh.
# Usage: add_krita_to_root.sh ROOT
# Idempotent: a finished install has ROOT/.dragedit-krita-ready.
# Debian's python3-zmq is deliberately NOT installed: the plug-in must use the pyzmq install.py vendors.
set -euo pipefail
ROOT=${1:?usage: add_krita_to_root.sh ROOT}
READY="$ROOT/.dragedit-krita-ready"
[ -e "$READY" ] && exit 0
[ -e "$ROOT/.dragedit-ready" ] || { echo "add_krita_to_root: $ROOT is not a finished GIMP root" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
t0=$(date +%s)
. "$(dirname "$0")/chroot_mounts.sh"  # unmount_all
mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
trap unmount_all EXIT
chroot "$ROOT" apt-get update -q
chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
  krita python3-pyqt5 xdotool
chroot "$ROOT" apt-get clean
if chroot "$ROOT" dpkg-query -W -f='${Status}' python3-zmq 2>/dev/null | grep -q installed; then
  echo "add_krita_to_root: python3-zmq got installed in the chroot; the vendored pyzmq test would prove nothing" >&2
  exit 1
fi
touch "$READY"
echo "add_krita_to_root: ready in $(( $(date +%s) - t0 ))s, $(du -smx "$ROOT" | cut -f1) MB"
