#!/usr/bin/env bash
# mixed-paths.sh: many short connections to one container port, alternately
# by the container's address and by 127.0.0.1:PORT (3 s each, 8 at once,
# three rounds), and the SYNs the container's kernel dropped by PAWS in
# TIME_WAIT. Each engine alone in a network namespace of its own:
#
#   bench/engine/mixed-paths.sh berth|docker|docker-noproxy
#
# docker-noproxy is a private dockerd with --userland-proxy=false. Needs
# root, busybox (static) and, for docker, dockerd. See docs/networking.md
# (Performance) for what it shows.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
engine=${1:?usage: mixed-paths.sh berth|docker|docker-noproxy}
if [[ -z ${MIXED_NETNS:-} ]]; then
	MIXED_NETNS=1 exec unshare --net -- "$0" "$@"
fi
ip link set lo up
echo 1 >/proc/sys/net/ipv4/tcp_tw_reuse # this namespace's own setting
T=$(mktemp -d /var/tmp/berth-mixed.XXXXXX)
S=$(mktemp -d /run/berth-mixed.XXXXXX)
DP=
cleanup() {
	set +e
	case $engine in
	berth) "$repo/bin/berth" --root "$T/root" --state "$S" rm -f web >/dev/null 2>&1 ;;
	*) [[ -n $DP ]] && { docker -H "unix://$T/d.sock" rm -f web >/dev/null 2>&1; kill "$DP"; wait "$DP"; } ;;
	esac
	grep -o " $T[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null
	rm -rf "$T" "$S"
}
trap cleanup EXIT
go build -C "$repo" -o "$T/mixedpaths" ./bench/engine/mixedpaths
mkdir -p "$T/rootfs/bin" "$T/www"
cp "$(command -v busybox)" "$T/rootfs/bin/busybox"
tar -C "$T/rootfs" -cf "$T/bb.tar" .
echo ok >"$T/www/i.txt"
run=(run -d --name web -v "$T/www:/www" -p 18080:8080 bb:1 /bin/busybox httpd -f -p 8080 -h /www)
case $engine in
berth)
	cli=("$repo/bin/berth" --root "$T/root" --state "$S") ;;
docker | docker-noproxy)
	opt=()
	[[ $engine == docker-noproxy ]] && opt=(--userland-proxy=false)
	dockerd --data-root "$T/data" --exec-root "$T/exec" --pidfile "$T/d.pid" -H "unix://$T/d.sock" \
		--storage-driver overlay2 "${opt[@]}" >"$T/dockerd.log" 2>&1 &
	DP=$!
	cli=(docker -H "unix://$T/d.sock")
	for _ in $(seq 100); do "${cli[@]}" version >/dev/null 2>&1 && break; sleep 0.2; done ;;
*) echo "unknown engine $engine" >&2; exit 2 ;;
esac
"${cli[@]}" import "$T/bb.tar" bb:1 >/dev/null
"${cli[@]}" "${run[@]}" >/dev/null
ip=$("${cli[@]}" inspect -f '{{.NetworkSettings.Networks.bridge.IPAddress}}' web)
pid=$("${cli[@]}" inspect -f '{{.State.Pid}}' web)
for _ in $(seq 50); do curl -sf -o /dev/null "http://$ip:8080/i.txt" && break; sleep 0.1; done
echo "$engine: container $ip, published 127.0.0.1:18080"
"$T/mixedpaths" 3 "$ip:8080" 127.0.0.1:18080
echo "SYNs dropped by PAWS in TIME_WAIT in the container: $(nsenter -t "$pid" -n nstat -az TcpExtPAWSTimewait | awk '/PAWS/{print $2}')"
