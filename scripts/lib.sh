# Shared helpers of berth's scripts (sourced).
set -euo pipefail

BERTH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
GO_VERSION=${GO_VERSION:-1.26.8}

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (berth creates namespaces, cgroups and mounts)"

# apt_install PKG...: installs the Debian packages that are missing.
apt_install() {
	local missing=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	((${#missing[@]})) || return 0
	log "apt-get install ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null || true
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# ensure_go: a Go toolchain of at least $GO_VERSION on PATH. On a machine
# without one, the toolchain is fetched from the Go module proxy (the same
# place `go` itself downloads toolchains from), so no other site is needed.
ensure_go() {
	export PATH=$PATH:/usr/local/go/bin:/usr/local/berth-go/bin
	if command -v go >/dev/null 2>&1; then
		local v; v=$(go env GOVERSION 2>/dev/null | sed 's/^go//')
		if [ "$(printf '%s\n%s\n' "$GO_VERSION" "$v" | sort -V | head -1)" = "$GO_VERSION" ]; then
			return 0
		fi
	fi
	apt_install ca-certificates curl unzip
	local proxy=${GOPROXY:-https://proxy.golang.org}; proxy=${proxy%%,*}
	local zip=/tmp/go-toolchain-$GO_VERSION.zip
	log "fetching Go $GO_VERSION from $proxy"
	curl -fsSL -o "$zip" "$proxy/golang.org/toolchain/@v/v0.0.1-go$GO_VERSION.linux-amd64.zip"
	rm -rf /usr/local/berth-go /tmp/go-toolchain && mkdir -p /tmp/go-toolchain
	unzip -q "$zip" -d /tmp/go-toolchain
	mv "/tmp/go-toolchain/golang.org/toolchain@v0.0.1-go$GO_VERSION.linux-amd64" /usr/local/berth-go
	chmod +x /usr/local/berth-go/bin/* /usr/local/berth-go/pkg/tool/*/*
	rm -rf "$zip" /tmp/go-toolchain
}

# make_busybox_rootfs DIR: a minimal root filesystem from Debian's
# busybox-static: /bin/busybox, its applets as symlinks, passwd and group.
make_busybox_rootfs() {
	local dir=$1
	mkdir -p "$dir"/{bin,etc,tmp,root,proc,sys,dev}
	cp /bin/busybox "$dir/bin/busybox"
	for a in $(/bin/busybox --list); do
		[ -e "$dir/bin/$a" ] || ln -s busybox "$dir/bin/$a"
	done
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$dir/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\n' >"$dir/etc/group"
	chmod 1777 "$dir/tmp"
}
