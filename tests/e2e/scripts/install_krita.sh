#!/usr/bin/env bash
# Install Debian's Krita (5.1.5 on Debian 12) with Python scripting, and Xvfb to run it headless.
# Debian's python3-zmq is deliberately NOT installed: the plug-in must use the pyzmq install.py vendors.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
for attempt in 1 2 3 4 5 6; do   # another apt run may hold the lists lock for a while
  apt-get update -q && break
  [ "$attempt" = 6 ] && exit 1
  sleep 10
done
apt-get install -y -q -o DPkg::Lock::Timeout=600 --no-install-recommends \
  krita python3-pyqt5 python3-sip xvfb
