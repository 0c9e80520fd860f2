#!/usr/bin/env bash
# compare.sh: berth against docker and podman on the container lifecycle, in
# one interleaved run of the shared harness (../shared/bench or $HARNESS):
#
#   B1  run --rm IMAGE /bin/true (default network and --net=none)
#   B3  exec C /bin/true into a running container
#   B4  50 idle containers started with run -d (one by one and 4 at a time):
#       start rate and engine memory (PSS) per container
#   B5  iperf3 and short HTTP connections host -> container: on the bridge,
#       through the published port by 127.0.0.1 and (added here to the
#       harness's copy) by the host's address HOST_ADDR (10.250.0.1 on a
#       link of the namespace): the ports are published on all
#       addresses, as `-p PORT:PORT` does, so docker serves 127.0.0.1 with
#       docker-proxy and the host's address with its DNAT rule; for berth
#       also by 127.0.0.2 ("published-dnat": the DNAT path that 127.0.0.1
#       takes with BERTH_PORT_REDIRECT=0, which the environment passes on
#       to berth for a whole run without redirection); for berth and docker
#       also by [::1] ("published-v6lo": docker's docker-proxy on [::],
#       berth's connect-time redirection to the IPv4-only container's
#       address mapped; podman does not serve [::1]; B5_V6_PATH=0 leaves it
#       out)
#
# Everything runs inside a throwaway network namespace made for the run (the
# "host" of every engine: their bridges and firewall rules live and die with
# it), with a private dockerd (own data root, exec root and socket), podman
# with its own root and run root, and berth with its own --root/--state, all
# under one temporary directory on the same file system. The harness is
# copied next to them so that the engine profiles can name those roots.
# Nothing is left behind: daemons are stopped by pid, containers removed,
# the namespace deleted.
#
# Usage (root): bench/engine/compare.sh [b1 b3 b4 b5]    (default: b1 b3 b4)
# Environment: ENGINES (default "docker podman berth"; docker or podman are
# skipped when not installed), B1_RUNS, B3_RUNS, DENSITY_N, DENSITY_PAR,
# BERTH (the berth binary, default ./bin/berth), HARNESS, OUT (results dir),
# PODMAN_RUNTIME (podman's --runtime; default its own, crun on Debian).
# B5 with berth's connect-time redirection on a hybrid cgroup host needs
# LEGACY_CGROUP_NS=0: the harness otherwise runs every engine in a mount
# namespace without /sys/fs/cgroup/unified (for crun 1.8, which refuses
# hybrid hosts), where berth finds no cgroup2 hierarchy to attach its
# programs to and publishes by DNAT alone; podman then needs
# PODMAN_RUNTIME=runc:
#   LEGACY_CGROUP_NS=0 PODMAN_RUNTIME=runc B5_RUNS=10 compare.sh b5
# BERTH_BASE=path/to/an/older/bin/berth adds it as the engine "berth-base"
# (its own --root and --state): before and after a change in one run.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
HARNESS=${HARNESS:-$repo/../shared/bench}
BERTH=${BERTH:-$repo/bin/berth}
OUT=${OUT:-$here/results/$(date -u +%Y%m%dT%H%M%SZ)}
die() { echo "compare.sh: $*" >&2; exit 1; }
log() { echo "compare.sh: $*" >&2; }

[[ $(id -u) == 0 ]] || die "run as root"
[[ -x $BERTH ]] || die "no berth binary at $BERTH (run make)"
[[ -d $HARNESS ]] || die "no benchmark harness at $HARNESS (set HARNESS)"
BERTH=$(readlink -f "$BERTH")
if [[ -n ${BERTH_BASE:-} ]]; then
	[[ -x $BERTH_BASE ]] || die "no berth binary at BERTH_BASE=$BERTH_BASE"
	BERTH_BASE=$(readlink -f "$BERTH_BASE")
fi

# Step 1: enter a network namespace of our own (unshare, not `ip netns exec`,
# which remounts /sys and would hide the cgroup file systems).
if [[ -z ${BERTH_BENCH_NETNS:-} ]]; then
	BERTH_BENCH_NETNS=1 exec unshare --net -- "$0" "$@"
fi
ip link set lo up
# The "host's address" for B5, on a link of this namespace only (a veth pair
# with both ends here: the kernel here may have no dummy driver).
HOST_ADDR=10.250.0.1
ip link add bench-host type veth peer name bench-peer
ip link set bench-peer up
ip addr add "$HOST_ADDR/24" dev bench-host
ip link set bench-host up

has() { command -v "$1" >/dev/null 2>&1; }
ENGINES=${ENGINES:-"docker podman berth"}
[[ -n ${BERTH_BASE:-} && " $ENGINES " != *" berth-base "* ]] && ENGINES+=" berth-base"
want=()
for e in $ENGINES; do
	case $e in
	docker) has dockerd && has docker && want+=(docker) || log "docker not installed: skipped" ;;
	podman) has podman && want+=(podman) || log "podman not installed: skipped" ;;
	berth) want+=(berth) ;;
	berth-base) [[ -n ${BERTH_BASE:-} ]] && want+=(berth-base) || die "berth-base needs BERTH_BASE" ;;
	*) die "unknown engine $e (docker, podman, berth, berth-base)" ;;
	esac
done

T=$(mktemp -d /var/tmp/berth-bench.XXXXXX)
DOCKERD_PID= BSTATE= BBSTATE=
cleanup() {
	set +e
	if [[ -n $DOCKERD_PID ]]; then
		dock ps -aq 2>/dev/null | xargs -r "$(command -v docker)" -H "unix://$T/docker/docker.sock" rm -f >/dev/null 2>&1
		kill "$DOCKERD_PID" 2>/dev/null
		for _ in $(seq 100); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.1; done
	fi
	if [[ -d $T/podman ]]; then
		pod rm -a -f -t 0 >/dev/null 2>&1
		pod system reset -f >/dev/null 2>&1
	fi
	if [[ -d $T/berth ]]; then
		"$BERTH" --root "$T/berth/root" --state "$BSTATE" ps -aq 2>/dev/null |
			xargs -r "$BERTH" --root "$T/berth/root" --state "$BSTATE" rm -f >/dev/null 2>&1
		rm -rf "$BSTATE"
	fi
	if [[ -d $T/berth-base ]]; then
		"$BERTH_BASE" --root "$T/berth-base/root" --state "$BBSTATE" ps -aq 2>/dev/null |
			xargs -r "$BERTH_BASE" --root "$T/berth-base/root" --state "$BBSTATE" rm -f >/dev/null 2>&1
		rm -rf "$BBSTATE"
	fi
	# Whatever is still mounted under $T (overlay roots of the engines).
	grep -o " $T[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT

dock() { docker -H "unix://$T/docker/docker.sock" "$@"; }
pod() { podman --root "$T/podman/root" --runroot "$T/podman/run" --cgroup-manager cgroupfs --events-backend file "$@"; }

cp -r "$HARNESS" "$T/harness"
rm -rf "$T/harness/results"
# B5: publish on every address and add the path through the host's address
# (the harness publishes on 127.0.0.1 only). Refuse to run a B5 that the
# edit did not reach.
b5=$T/harness/b5-network.sh
# For berth also "published-dnat": the published port by 127.0.0.2, which
# the connect-time redirection has no entry for (it holds the namespace's
# addresses: 127.0.0.1), so the DNAT rules serve it: the path that
# BERTH_PORT_REDIRECT=0 gives 127.0.0.1, measured in the same run.
sed -i -e 's|-p "127.0.0.1:$pi:5201" -p "127.0.0.1:$ph:8080"|-p "$pi:5201" -p "$ph:8080"|' \
	-e 's|^  TOOLS+=("$e-bridge" "$e-published")$|  TOOLS+=("$e-bridge" "$e-published" "$e-hostaddr")\
  TGT_IPERF[$e-hostaddr]='"$HOST_ADDR"':$pi; TGT_HTTP[$e-hostaddr]='"$HOST_ADDR"':$ph\
  if [[ $e == berth* \&\& ${B5_DNAT_PATH:-1} == 1 ]]; then TOOLS+=("$e-published-dnat"); TGT_IPERF[$e-published-dnat]=127.0.0.2:$pi; TGT_HTTP[$e-published-dnat]=127.0.0.2:$ph; fi\
  if [[ $e != podman \&\& ${B5_V6_PATH:-1} == 1 ]]; then TOOLS+=("$e-published-v6lo"); TGT_IPERF[$e-published-v6lo]=[::1]:$pi; TGT_HTTP[$e-published-v6lo]=[::1]:$ph; fi|' \
	-e 's|^  if iperf3 -c "$host"|  host=${host#[[]}; host=${host%[]]}\n&|' "$b5"
grep -q '"$e-hostaddr"' "$b5" && grep -q -- '-p "$pi:5201"' "$b5" && grep -q 'published-dnat' "$b5" &&
	grep -q 'published-v6lo' "$b5" && grep -qF 'host=${host#[[]}' "$b5" ||
	die "could not add the host address and [::1] paths to $b5"
profiles=$T/harness/engines

for e in "${want[@]}"; do
	case $e in
	docker)
		mkdir -p "$T/docker/data" "$T/docker/exec"
		echo '{}' >"$T/docker/daemon.json"
		dockerd --config-file "$T/docker/daemon.json" --data-root "$T/docker/data" --exec-root "$T/docker/exec" \
			--pidfile "$T/docker/docker.pid" -H "unix://$T/docker/docker.sock" \
			--storage-driver overlay2 --log-level warn >"$T/dockerd.log" 2>&1 &
		DOCKERD_PID=$!
		for _ in $(seq 300); do dock version >/dev/null 2>&1 && break; sleep 0.1; done
		dock version >/dev/null 2>&1 || die "dockerd did not start: $(tail -3 "$T/dockerd.log")"
		log "dockerd $(dock version -f '{{.Server.Version}}') (pid $DOCKERD_PID)"
		cat >"$profiles/docker.env" <<-EOF
			CLI="docker -H unix://$T/docker/docker.sock"
			ENGINE_DAEMONS="dockerd containerd"
		EOF
		;;
	podman)
		mkdir -p "$T/podman"
		# The harness's profile adds ulimits when CAP_SYS_RESOURCE is missing.
		cat >>"$profiles/podman.env" <<-EOF
			CLI="podman --root $T/podman/root --runroot $T/podman/run --cgroup-manager cgroupfs --events-backend file${PODMAN_RUNTIME:+ --runtime $PODMAN_RUNTIME}"
			CLI_RM_ARGS="-t 0"
		EOF
		log "podman $(podman version -f '{{.Client.Version}}')"
		;;
	berth)
		# The state dir holds the monitors' sockets: keep it short.
		BSTATE=$(mktemp -d /run/berth-bench.XXXXXX)
		mkdir -p "$T/berth"
		cat >"$profiles/berth.env" <<-EOF
			CLI="$BERTH --root $T/berth/root --state $BSTATE"
		EOF
		log "berth $("$BERTH" --version)"
		;;
	berth-base)
		BBSTATE=$(mktemp -d /run/berth-bench.XXXXXX)
		mkdir -p "$T/berth-base"
		cat >"$profiles/berth-base.env" <<-EOF
			CLI="$BERTH_BASE --root $T/berth-base/root --state $BBSTATE"
		EOF
		log "berth-base $("$BERTH_BASE" --version) ($BERTH_BASE)"
		;;
	esac
done

mkdir -p "$OUT"
export ENGINES="${want[*]}" RESULTS_DIR=$OUT
benches=("$@")
((${#benches[@]})) || benches=(b1 b3 b4)
cd "$T/harness"
./run-all.sh "${benches[@]}"
log "results in $OUT"
cat "$OUT/summary.md"
