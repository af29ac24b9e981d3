#!/usr/bin/env bash
# Build (once) a Debian sid chroot with Krita 6 from Debian experimental (Qt 6, PyQt6) and xdotool.
# Usage: build_krita6_root.sh ROOT
# Idempotent: a finished root has ROOT/.dragedit-ready; an interrupted debootstrap is started over.
# Debian's python3-zmq is deliberately NOT installed: the plug-in must use the pyzmq install.py vendors.
set -euo pipefail
ROOT=${1:?usage: build_krita6_root.sh ROOT}
READY="$ROOT/.dragedit-ready"
[ -e "$READY" ] && exit 0
export DEBIAN_FRONTEND=noninteractive
t0=$(date +%s)
. "$(dirname "$0")/chroot_mounts.sh"  # unmount_all
if ! command -v debootstrap >/dev/null; then
  apt-get update -q
  apt-get install -y -q -o DPkg::Lock::Timeout=600 --no-install-recommends debootstrap
fi
if [ -d "$ROOT/debootstrap" ]; then
  echo "build_krita6_root: removing the unfinished root $ROOT"
  unmount_all
  rm -rf --one-file-system "$ROOT"
fi
if [ ! -e "$ROOT/etc/debian_version" ]; then
  mkdir -p "$ROOT"
  debootstrap --variant=minbase sid "$ROOT" http://deb.debian.org/debian
  echo "build_krita6_root: debootstrap done at +$(( $(date +%s) - t0 ))s"
fi
echo "deb http://deb.debian.org/debian experimental main" > "$ROOT/etc/apt/sources.list.d/experimental.list"
mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
trap unmount_all EXIT
chroot "$ROOT" apt-get -o Acquire::Check-Valid-Until=false update -q  # sid and experimental move daily: a cached Release may be past its Valid-Until
chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
  -t experimental krita python3-pyqt6 xdotool
chroot "$ROOT" apt-get clean
if chroot "$ROOT" dpkg-query -W -f='${Status}' python3-zmq 2>/dev/null | grep -q installed; then
  echo "build_krita6_root: python3-zmq got installed in the chroot; the vendored pyzmq test would prove nothing" >&2
  exit 1
fi
chroot "$ROOT" dpkg-query -W -f='krita ${Version}\n' krita
touch "$READY"
echo "build_krita6_root: ready in $(( $(date +%s) - t0 ))s, $(du -smx "$ROOT" | cut -f1) MB"
