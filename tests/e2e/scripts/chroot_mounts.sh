# Sourced by the chroot build scripts (they set ROOT first).
# unmount_all: whatever is mounted inside ROOT (/proc, or what an interrupted run left), deepest first.
unmount_all() {
  awk -v r="$(readlink -f "$ROOT")" '$2 == r || index($2, r "/") == 1 {print $2}' /proc/mounts \
    | sort -r | while read -r m; do umount -l "$m" || true; done
}
