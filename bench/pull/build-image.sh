#!/usr/bin/env bash
# Builds, once, the pull benchmark's image: a ~150 MB (compressed) Debian
# image of four layers as an OCI layout, tag "bench", and prints the
# layout's directory ($CACHE/debian-oci-<hash of the parameters>).
#
#   1  debootstrap --variant=minbase bookworm
#   2  the packages of $EXTRA_PACKAGES (the difference a second, larger
#      debootstrap makes): python3, git, C headers and a few tools
#   3  an application: many small files (a copy of the Python standard
#      library) and a $BLOB_MIB MiB incompressible file
#   4  a configuration change and deletions (whiteouts, an opaque directory)
#
# The result is kept; delete the directory to rebuild. debootstrap talks
# to the Debian mirror apt uses (MIRROR overrides); nothing else is contacted.
# Needs root, debootstrap, umoci and jq.
set -euo pipefail
exec 3>&1 1>&2 # stdout carries only the layout's path

CACHE=${CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/berth-bench}
SUITE=${SUITE:-bookworm}
EXTRA_PACKAGES=${EXTRA_PACKAGES:-python3,curl,ca-certificates,iproute2,procps,less,xz-utils,git,make,libc6-dev,gnupg,openssl,wget,file,unzip}
BLOB_MIB=${BLOB_MIB:-16}
OUT=$CACHE/debian-oci-$(echo "$SUITE $EXTRA_PACKAGES $BLOB_MIB" | sha256sum | cut -c1-12)

log() { printf '%s build-image: %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

if [[ -f $OUT/.complete ]]; then
	log "cached: $OUT"
	echo "$OUT" >&3
	exit 0
fi
[[ $(id -u) == 0 ]] || die "run as root (debootstrap)"
for t in debootstrap umoci jq; do
	command -v "$t" >/dev/null || die "$t is missing (apt-get install debootstrap umoci jq)"
done

# The first Debian mirror apt is configured with.
mirror() {
	{ grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}'
	  grep -h '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}'; } | grep -m1 '/debian/*$' || true
}
MIRROR=${MIRROR:-$(mirror)}
[[ -n $MIRROR ]] || die "no Debian mirror in apt's sources; set MIRROR"

mkdir -p "$CACHE/debs"
W=$(mktemp -d /var/tmp/berth-bench-image.XXXXXX)
trap 'rm -rf --one-file-system "$W" "$OUT.tmp"' EXIT

strip_rootfs() {
	rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/cache/apt/*.bin "$1"/var/lib/apt/lists/* \
		"$1"/debootstrap "$1"/var/log/bootstrap.log
}

log "debootstrap minbase $SUITE from $MIRROR"
debootstrap --variant=minbase --cache-dir="$CACHE/debs" "$SUITE" "$W/base" "$MIRROR" >"$W/debootstrap-base.log" 2>&1 ||
	die "debootstrap failed; see the log: $(tail -3 "$W/debootstrap-base.log")"
strip_rootfs "$W/base"
log "debootstrap minbase + $EXTRA_PACKAGES"
debootstrap --variant=minbase --include="$EXTRA_PACKAGES" --cache-dir="$CACHE/debs" "$SUITE" "$W/full" "$MIRROR" \
	>"$W/debootstrap-full.log" 2>&1 || die "debootstrap failed: $(tail -3 "$W/debootstrap-full.log")"
strip_rootfs "$W/full"

log "layers with umoci"
rm -rf "$OUT.tmp"
umoci init --layout "$OUT.tmp"
umoci new --image "$OUT.tmp:bench"
umoci unpack --image "$OUT.tmp:bench" "$W/bundle" >/dev/null
R=$W/bundle/rootfs
clear_dir() { find "$1" -mindepth 1 -maxdepth 1 -exec rm -rf --one-file-system {} +; }

# 1: the base system
cp -a "$W/base/." "$R/"
umoci repack --refresh-bundle --image "$OUT.tmp:bench" --history.created_by "debootstrap --variant=minbase $SUITE" "$W/bundle"

# 2: the packages (umoci stores what differs from layer 1)
clear_dir "$R"
cp -a "$W/full/." "$R/"
umoci repack --refresh-bundle --image "$OUT.tmp:bench" --history.created_by "apt-get install ${EXTRA_PACKAGES//,/ }" "$W/bundle"

# 3: the application
mkdir -p "$R/opt/app"
py=$(find "$R/usr/lib" -maxdepth 1 -type d -name 'python3.*' -printf '%f\n' | sort | head -1)
if [[ -n $py ]]; then cp -a "$R/usr/lib/$py" "$R/opt/app/lib"; else cp -a "$R/usr/share" "$R/opt/app/lib"; fi
head -c $((BLOB_MIB << 20)) /dev/urandom >"$R/opt/app/model.bin"
umoci repack --refresh-bundle --image "$OUT.tmp:bench" --history.created_by "COPY app /opt/app" "$W/bundle"

# 4: configuration and deletions
printf 'listen=0.0.0.0:8080\nworkers=4\n' >"$R/etc/app.conf"
rm -rf "$R/usr/share/doc" "$R/opt/app/lib/test" "$R/opt/app/lib/__pycache__"
rm -rf "$R/opt/app/lib/json" && mkdir "$R/opt/app/lib/json" && echo '# replaced' >"$R/opt/app/lib/json/__init__.py"
umoci repack --refresh-bundle --image "$OUT.tmp:bench" --history.created_by "configure app" "$W/bundle"

umoci config --image "$OUT.tmp:bench" --author berth-bench \
	--config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --config.cmd /bin/bash
umoci gc --layout "$OUT.tmp"

man=$(jq -r '.manifests[0].digest' "$OUT.tmp/index.json")
jq -r '.layers[] | .size' "$OUT.tmp/blobs/sha256/${man#sha256:}" |
	awk '{t += $1; printf "layer %d: %.1f MB compressed\n", NR, $1 / 1e6} END {printf "total: %.1f MB compressed\n", t / 1e6}' >&2
du -sm "$R" | awk '{print "unpacked: " $1 " MiB"}' >&2
mv "$OUT.tmp" "$OUT"
touch "$OUT/.complete"
log "done: $OUT"
echo "$OUT" >&3
