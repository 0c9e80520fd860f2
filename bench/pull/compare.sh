#!/usr/bin/env bash
# Pull benchmark: berth vs docker vs podman, in one run, against a local
# registry, with `skopeo copy` to an OCI directory as the download-only floor.
#
#   bench/pull/compare.sh            # RUNS=3 rounds
#   RUNS=5 ENGINES="skopeo berth docker" bench/pull/compare.sh
#
# What it does (all traffic stays on 127.0.0.1):
#   1. builds, once, a ~150 MB four-layer Debian image (build-image.sh; cached
#      under ~/.cache/berth-bench)
#   2. starts Debian's docker-registry on 127.0.0.1:<free port> with its
#      storage in a temp dir, and pushes the image there with skopeo (docker
#      v2 schema 2 manifest, gzip layers)
#   3. starts a private dockerd (own --data-root, --exec-root, --pidfile and
#      unix socket under the temp dir; no bridge, no iptables)
#   4. per round, engines in rotating order: give the engine an empty store
#      (MODE=fresh, the default: a new storage root per round, docker's
#      daemon restarted on a new --data-root; nothing is removed before the
#      end) or remove the image (MODE=rmi: docker/podman rmi, berth's previous
#      root removed), `sync`, then time the pull; the page cache is not dropped.
#      MODE=rmi measures what a pull right after removing an image costs: on
#      ext4 without a journal (this VM's disk) the inode allocator then skips
#      the thousands of inodes just freed on every create for a few minutes,
#      which slows every engine's unpacking several times over
#   5. prints each round, the medians and the ratios to docker, and the disk
#      taken by the unpacked layers after the first pull
# Everything it started is stopped by pid and everything it mounted or
# created is removed at exit.
#
# Environment: RUNS (3), MODE (fresh or rmi), ENGINES ("skopeo berth docker podman"), BERTH_BIN
# (bin/berth of this checkout), BERTH_BASE (another berth binary, e.g. main's
# build, run as engine "berth-base" in the same rounds: before/after), BERTH_DRIVER (berth's --storage-driver, default
# its own choice), CACHE (~/.cache/berth-bench), DOCKER_CLI (/usr/bin/docker).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
RUNS=${RUNS:-3}
MODE=${MODE:-fresh}
[[ $MODE == fresh || $MODE == rmi ]] || { echo "MODE must be fresh or rmi" >&2; exit 1; }
ENGINES=${ENGINES:-skopeo berth docker podman}
BERTH=${BERTH_BIN:-$REPO/bin/berth}
BERTH_BASE=${BERTH_BASE:-}
if [[ -n $BERTH_BASE && " $ENGINES " != *" berth-base "* ]]; then ENGINES="$ENGINES berth-base"; fi
CACHE=${CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/berth-bench}
DOCKER_CLI=${DOCKER_CLI:-$(command -v /usr/bin/docker || command -v docker || true)}
export CACHE

log() { printf '%s compare: %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $(id -u) == 0 ]] || die "run as root"
has() { [[ " $ENGINES " == *" $1 "* ]]; }
need=(skopeo docker-registry curl python3 jq)
has berth && [[ ! -x $BERTH ]] && die "$BERTH not found: run make (or set BERTH_BIN)"
has berth-base && [[ ! -x $BERTH_BASE ]] && die "BERTH_BASE=$BERTH_BASE is not an executable"
has docker && need+=(dockerd "$DOCKER_CLI")
has podman && need+=(podman)
for t in "${need[@]}"; do
	command -v "$t" >/dev/null || die "$t is missing: apt-get install docker.io podman docker-registry skopeo umoci debootstrap jq curl"
done

LAYOUT=$("$HERE/build-image.sh") || die "building the image failed"

T=$(mktemp -d /var/tmp/berth-bench-pull.XXXXXX)
REGISTRY_PID=
DOCKERD_PID=
DOCKERD_CHILDREN=

# stop ends a process we started: TERM, then KILL after 30 s.
stop() {
	local pid=$1 i
	[[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 300; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
	kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
	set +e
	stop_dockerd
	stop "$REGISTRY_PID"
	# docker and podman mount layers and their storage roots under $T
	findmnt -rn -o TARGET | awk -v t="$T" 'index($0, t) == 1' | sort -r | while read -r m; do umount -l "$m"; done
	rm -rf --one-file-system "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# registry
PORT=$(free_port)
REG=127.0.0.1:$PORT
REF=$REG/bench/debian:v1
mkdir -p "$T/registry"
cat >"$T/registry.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $T/registry
  delete:
    enabled: true
http:
  addr: $REG
EOF
docker-registry serve "$T/registry.yml" >"$T/registry.log" 2>&1 &
REGISTRY_PID=$!
for _ in $(seq 100); do curl -sf "http://$REG/v2/" >/dev/null && break; sleep 0.1; done
curl -sf "http://$REG/v2/" >/dev/null || die "registry did not start: $(tail -3 "$T/registry.log")"
log "registry at $REG (pid $REGISTRY_PID)"
skopeo copy --quiet --dest-tls-verify=false --format v2s2 "oci:$LAYOUT:bench" "docker://$REF" >"$T/push.log" 2>&1 ||
	die "push with skopeo failed: $(tail -3 "$T/push.log")"
MANIFEST=$(skopeo inspect --tls-verify=false --raw "docker://$REF")
NLAYERS=$(jq '.layers | length' <<<"$MANIFEST")
CSIZE=$(jq '[.layers[].size] | add' <<<"$MANIFEST")
CONFIG=$(jq -r '.config.digest' <<<"$MANIFEST")
log "pushed $REF: $NLAYERS layers, $((CSIZE / 1000000)) MB compressed"

# dockerd: one daemon, or (MODE=fresh) one per round on its own --data-root
dock() { DOCKER_CONFIG=$T/docker-cli "$DOCKER_CLI" -H "unix://$T/docker/docker.sock" "$@"; }
docker_root() { if [[ $MODE == fresh ]]; then echo "$T/docker/data$1"; else echo "$T/docker/data"; fi; }
stop_dockerd() {
	[[ -n $DOCKERD_PID ]] || return 0
	DOCKERD_CHILDREN=$(pgrep -P "$DOCKERD_PID" || true)
	stop "$DOCKERD_PID"
	for c in $DOCKERD_CHILDREN; do stop "$c"; done
	DOCKERD_PID=
}
start_dockerd() {
	mkdir -p "$(docker_root "$1")" "$T/docker/exec" "$T/docker-cli"
	echo '{}' >"$T/docker/daemon.json"
	dockerd --config-file "$T/docker/daemon.json" --data-root "$(docker_root "$1")" --exec-root "$T/docker/exec" \
		--pidfile "$T/docker/docker.pid" -H "unix://$T/docker/docker.sock" \
		--bridge=none --iptables=false --ip-masq=false --insecure-registry "$REG" \
		--storage-driver overlay2 --log-level warn >>"$T/dockerd.log" 2>&1 &
	DOCKERD_PID=$!
	for _ in $(seq 300); do dock version >/dev/null 2>&1 && break; sleep 0.1; done
	dock version >/dev/null 2>&1 || die "dockerd did not start: $(tail -3 "$T/dockerd.log")"
}
if has docker; then
	start_dockerd 1
	log "dockerd $(dock version -f '{{.Server.Version}}') (pid $DOCKERD_PID)"
fi
PODMAN_ROUND=1
podman_root() { if [[ $MODE == fresh ]]; then echo "$T/podman/root$1"; else echo "$T/podman/root"; fi; }
pod() { podman --root "$(podman_root "$PODMAN_ROUND")" --runroot "$T/podman/run$PODMAN_ROUND" --storage-driver overlay \
	--events-backend none --cgroup-manager cgroupfs "$@"; }

berth_root() { echo "$T/${2:-berth}/r$1"; }
bth() {
	local r=$1
	shift
	"$BERTH" --root "$(berth_root "$r")" --state "$T/berth/s$r" ${BERTH_DRIVER:+--storage-driver "$BERTH_DRIVER"} "$@"
}
bthb() {
	local r=$1
	shift
	"$BERTH_BASE" --root "$(berth_root "$r" berth-base)" --state "$T/berth-base/s$r" ${BERTH_DRIVER:+--storage-driver "$BERTH_DRIVER"} "$@"
}

# prepare puts an engine in the "image absent" state before round $2.
prepare() {
	if [[ $MODE == fresh ]]; then
		case $1 in
		docker) if (($2 > 1)); then stop_dockerd && start_dockerd "$2"; fi ;;
		podman) PODMAN_ROUND=$2 ;;
		esac
		return
	fi
	case $1 in
	skopeo) rm -rf "$T/dl1" ;;
	berth) rm -rf "$(berth_root $(($2 - 1)))" "$T/berth/s$(($2 - 1))" ;;
	berth-base) rm -rf "$(berth_root $(($2 - 1)) berth-base)" "$T/berth-base/s$(($2 - 1))" ;;
	docker) dock rmi -f "$REF" >/dev/null 2>&1 || true ;;
	podman) pod rmi -f "$REF" >/dev/null 2>&1 || true ;;
	esac
}

# pull_cmd pulls with engine $1 in round $2 (quietly: no terminal drawing).
pull_cmd() {
	case $1 in
	skopeo) if [[ $MODE == fresh ]]; then d=$T/dl$2; else d=$T/dl1; fi; skopeo copy --quiet --src-tls-verify=false "docker://$REF" "oci:$d:x" ;;
	berth) bth "$2" pull -q "$REF" ;;
	berth-base) bthb "$2" pull -q "$REF" ;;
	docker) dock pull -q "$REF" ;;
	podman) pod pull -q --tls-verify=false "$REF" ;;
	esac
}

du_mib() { xargs -r du -sck 2>/dev/null | awk '$2 == "total" {printf "%.1f", $1 / 1024}'; }

# disk reports the unpacked layers' size after the first pull (MiB).
disk() {
	case $1 in
	skopeo) echo "$T/dl1" | du_mib ;;
	berth) echo "$(berth_root 1)/snapshots" | du_mib ;;
	berth-base) echo "$(berth_root 1 berth-base)/snapshots" | du_mib ;;
	docker) dock image inspect -f '{{.GraphDriver.Data.LowerDir}}:{{.GraphDriver.Data.UpperDir}}' "$REF" | tr ':' '\n' | grep '^/' | sort -u | du_mib ;;
	podman) pod image inspect --format '{{.GraphDriver.Data.LowerDir}}:{{.GraphDriver.Data.UpperDir}}' "$REF" | tr ':' '\n' | grep '^/' | sort -u | du_mib ;;
	esac
}

# store reports the engine's whole storage directory after the first pull
# (MiB): layers plus metadata, and for berth the compressed blobs it keeps.
store() {
	case $1 in
	skopeo) echo "$T/dl1" | du_mib ;;
	berth) berth_root 1 | du_mib ;;
	berth-base) berth_root 1 berth-base | du_mib ;;
	docker) docker_root 1 | du_mib ;;
	podman) podman_root 1 | du_mib ;;
	esac
}

image_id() {
	case $1 in
	berth) bth 1 image inspect -f '{{.Id}}' "$REF" ;;
	berth-base) bthb 1 image inspect -f '{{.Id}}' "$REF" ;;
	docker) dock image inspect -f '{{.Id}}' "$REF" ;;
	podman) echo "sha256:$(pod image inspect --format '{{.Id}}' "$REF")" ;;
	*) echo "$CONFIG" ;;
	esac
}

read -r -a tools <<<"$ENGINES"
n=${#tools[@]}
: >"$T/times"
declare -A DISK STORE
for ((r = 1; r <= RUNS; r++)); do
	for ((k = 0; k < n; k++)); do
		tool=${tools[$(((k + r - 1) % n))]}
		prepare "$tool" "$r"
		sync
		t0=$(date +%s%N)
		if ! pull_cmd "$tool" "$r" >>"$T/pull-$tool.log" 2>&1; then
			die "$tool pull failed in round $r: $(tail -3 "$T/pull-$tool.log")"
		fi
		t1=$(date +%s%N)
		ms=$(((t1 - t0) / 1000000))
		echo "$tool $r $ms" >>"$T/times"
		log "round $r: $tool $ms ms"
		if ((r == 1)); then
			DISK[$tool]=$(disk "$tool")
			STORE[$tool]=$(store "$tool")
			id=$(image_id "$tool")
			[[ $id == "$CONFIG" ]] || log "warning: $tool has image ID $id, the registry's config is $CONFIG"
		fi
	done
done

median() { sort -n | awk '{a[NR] = $1} END {if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
declare -A MED
for tool in "${tools[@]}"; do
	MED[$tool]=$(awk -v t="$tool" '$1 == t {print $3}' "$T/times" | median)
done

echo
echo "Pull of $REF ($NLAYERS layers, $(awk -v s="$CSIZE" 'BEGIN {printf "%.1f", s / 1e6}') MB compressed) from a local registry, $RUNS rounds, MODE=$MODE"
echo "gzip: berth $(command -v igzip >/dev/null && echo "igzip ($(command -v igzip))" || echo "Go decoder (igzip not installed)"), docker $(command -v unpigz >/dev/null && echo unpigz || echo "Go decoder (unpigz not installed)")"
echo "berth $(git -C "$REPO" describe --always --dirty 2>/dev/null || echo '?'), $("$BERTH" --version 2>/dev/null | head -1)"
has docker && echo "docker $(dock version -f '{{.Server.Version}}') (overlay2)"
has podman && echo "$(podman --version) (overlay)"
echo "skopeo $(skopeo --version | awk '{print $3}') (download + verify only, to an OCI directory)"
echo
printf '%-11s' engine
for ((r = 1; r <= RUNS; r++)); do printf '%9s' "run$r"; done
printf '%10s %8s %13s %10s\n' median /docker "layers MiB" "store MiB"
for tool in "${tools[@]}"; do
	printf '%-11s' "$tool"
	for ((r = 1; r <= RUNS; r++)); do printf '%7sms' "$(awk -v t="$tool" -v r="$r" '$1 == t && $2 == r {print $3}' "$T/times")"; done
	ratio=-
	if has docker; then ratio=$(awk -v a="${MED[$tool]}" -v b="${MED[docker]}" 'BEGIN {printf "%.2f", a / b}'); fi
	printf '%8sms %8s %13s %10s\n' "${MED[$tool]}" "$ratio" "${DISK[$tool]}" "${STORE[$tool]}"
done
# ratio_rounds prints the median over rounds of $1's time / $2's time.
ratio_rounds() {
	awk -v a="$1" -v b="$2" '$1 == a {x[$2] = $3} $1 == b {y[$2] = $3} END {for (r in x) if (r in y) print x[r] / y[r]}' "$T/times" | median | awk '{printf "%.2f", $1}'
}
echo
if has docker; then echo "berth/docker, median of per-round ratios: $(ratio_rounds berth docker)"; fi
if has berth-base; then
	echo "berth/berth-base, median of per-round ratios: $(ratio_rounds berth berth-base) (berth-base: $BERTH_BASE)"
fi
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "layers: the unpacked layer directories (berth: <root>/snapshots; docker, podman: GraphDriver.Data of image inspect)"
echo "store: the whole storage directory (berth keeps the compressed blobs too); skopeo: the compressed download"
