#!/usr/bin/env bash
# Build (once) a Debian trixie chroot with GIMP 3 and its Python plug-in support.
# Usage: build_gimp_root.sh ROOT
# Idempotent: a finished root has ROOT/.dragedit-ready; an interrupted debootstrap is started over.
# Debian's python3-zmq is deliberately NOT installed: the plug-in must use the pyzmq install.py vendors.
set -euo pipefail
ROOT=${1:?usage: build_gimp_root.sh ROOT}
READY="$ROOT/.dragedit-ready"
# at-spi2-core + gir1.2-atspi-2.0: GTK's accessibility tree, where the clicked tests find the dialog's widgets
# (a root made before they were added gets them on the next run)
ATSPI="$ROOT/usr/lib/x86_64-linux-gnu/girepository-1.0/Atspi-2.0.typelib"
[ -e "$READY" ] && [ -e "$ATSPI" ] && exit 0
export DEBIAN_FRONTEND=noninteractive
t0=$(date +%s)

. "$(dirname "$0")/chroot_mounts.sh"  # unmount_all

if ! command -v debootstrap >/dev/null; then
  apt-get update -q
  apt-get install -y -q -o DPkg::Lock::Timeout=600 --no-install-recommends debootstrap
fi
if [ -d "$ROOT/debootstrap" ]; then   # debootstrap removes this folder when it finishes
  echo "build_gimp_root: removing the unfinished root $ROOT"
  unmount_all
  rm -rf --one-file-system "$ROOT"
fi
if [ ! -e "$ROOT/etc/debian_version" ]; then
  mkdir -p "$ROOT"
  debootstrap --variant=minbase trixie "$ROOT" http://deb.debian.org/debian
  echo "build_gimp_root: debootstrap done at +$(( $(date +%s) - t0 ))s"
fi
mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
trap unmount_all EXIT
chroot "$ROOT" apt-get update -q
chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
  gimp python3-gi gir1.2-gimp-3.0 gir1.2-gegl-0.4 at-spi2-core gir1.2-atspi-2.0
chroot "$ROOT" apt-get clean
if chroot "$ROOT" dpkg-query -W -f='${Status}' python3-zmq 2>/dev/null | grep -q installed; then
  echo "build_gimp_root: python3-zmq got installed in the chroot; the vendored pyzmq test would prove nothing" >&2
  exit 1
fi
touch "$READY"
echo "build_gimp_root: ready in $(( $(date +%s) - t0 ))s, $(du -smx "$ROOT" | cut -f1) MB"
