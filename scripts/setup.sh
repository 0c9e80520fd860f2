#!/usr/bin/env bash
# Sets up berth on a fresh Debian 12 machine (as root), builds it, makes a
# local busybox bundle from Debian's busybox-static and runs a container in
# it with berth-runtime: its own hostname, pid 1, and a memory limit.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

apt_install build-essential busybox-static jq ca-certificates
ensure_go
cd "$BERTH_DIR"
log "building (make)"
make -s

b=/var/tmp/berth-demo
rm -rf "$b" && mkdir -p "$b"
make_busybox_rootfs "$b/rootfs"
( cd "$b" && "$BERTH_DIR/bin/berth-runtime" spec )
jq '.process.terminal = false
  | .hostname = "berth-demo"
  | .linux.resources.memory = {"limit": 67108864}
  | .process.args = ["sh", "-c", "echo \"hostname: $(hostname)\"; echo \"my pid: $$\"; l=$(cat /sys/fs/cgroup/memory/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max); echo \"memory limit: $l bytes\""]' \
  "$b/config.json" >"$b/config.json.new" && mv "$b/config.json.new" "$b/config.json"

log "berth-runtime run --bundle $b demo"
"$BERTH_DIR/bin/berth-runtime" --root /run/berth-demo run --bundle "$b" "demo-$$"

log "berth: a busybox image made from busybox-static, run with a 64 MiB memory limit"
tar -C "$b/rootfs" -c . | "$BERTH_DIR/bin/berth" import - busybox:latest >/dev/null
"$BERTH_DIR/bin/berth" run --rm --hostname berth-demo --memory 64m busybox sh -c \
  'echo "hostname: $(hostname)"; echo "my pid: $$"; l=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max); echo "memory limit: $l bytes"'
