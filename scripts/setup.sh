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

log "berth: a web server from a host directory, published on 127.0.0.1:8080 (nftables DNAT, no proxy), 64 MiB"
mkdir -p "$b/site" && echo "hello from a berth container" >"$b/site/index.html"
"$BERTH_DIR/bin/berth" rm -f berth-demo-web >/dev/null 2>&1 || true
"$BERTH_DIR/bin/berth" run -d --name berth-demo-web -p 8080:80 -v "$b/site:/www:ro" --memory 64m \
  busybox httpd -f -p 80 -h /www >/dev/null
"$BERTH_DIR/bin/berth" ps --filter name=berth-demo-web --format 'table {{.Names}}\t{{.Status}}\t{{.Ports}}'
for i in $(seq 50); do
  page=$(busybox wget -q -O - http://127.0.0.1:8080/ 2>/dev/null) && break
  sleep 0.1
done
echo "GET http://127.0.0.1:8080/ -> ${page:-nothing}"
echo "memory limit: $("$BERTH_DIR/bin/berth" exec berth-demo-web cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || "$BERTH_DIR/bin/berth" exec berth-demo-web cat /sys/fs/cgroup/memory.max) bytes"
"$BERTH_DIR/bin/berth" rm -f berth-demo-web >/dev/null
[ -n "${page:-}" ] || die "the published port did not answer"
