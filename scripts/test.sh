#!/usr/bin/env bash
# Runs berth's whole test suite as root on a Debian 12 machine. It installs
# what the tests need, builds, and runs: gofmt and go vet; every package's
# unit and root tests; the runtime conformance suite (test/integration)
# against bin/berth-runtime and, as a reference, against runc; and the
# cgroup tests inside a qemu-booted kernel with pure cgroup v2.
#
# Environment: SKIP_QEMU=1 skips the VM, SKIP_REFERENCE=1 skips runc.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

apt_install build-essential busybox-static jq iproute2 nftables runc containerd util-linux cpio qemu-system-x86 linux-image-amd64
ensure_go
cd "$BERTH_DIR"
export GOFLAGS=${GOFLAGS:-}

log "build"
make -s

log "gofmt"
bad=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
[ -z "$bad" ] || die "gofmt would change: $bad"

log "go vet"
go vet ./...

log "unit and root tests of every package (test/integration against bin/berth-runtime)"
# -timeout: the e2e and network packages run for minutes on a loaded 2-CPU
# machine, past go test's default of 10 minutes per package.
go test -count=1 -timeout 40m ./...

log "the engine's end-to-end tests again with the container monitor handing over to berth-shim-idle 1 ms after any activity (every request and exit crosses a hand-over)"
BERTH_SHIM_IDLE=1ms go test -count=1 -timeout 20m ./test/e2e/

log "the conformance suite again with every init through berth-nsenter (the C stage) and the Go init, every exec'd process through the Go init, and the runtime moving each into its cgroup (cgroup.procs)"
BERTH_RUNTIME_NSENTER=always BERTH_RUNTIME_EXEC_INIT=go BERTH_RUNTIME_CGROUP_JOIN=procs go test -count=1 ./test/integration/

if [ "${SKIP_REFERENCE:-}" != 1 ]; then
	log "the same conformance suite against runc (reference)"
	BERTH_TEST_RUNTIME=runc go test -count=1 ./test/integration/
fi

if [ "${SKIP_QEMU:-}" != 1 ]; then
	log "cgroup v2 in a VM: the cgroups package, and the published ports' connect-time redirection (its programs attach to the cgroup2 root)"
	test/qemu/run.sh -m loop -p ./internal/cgroups -p ./internal/network/portredirect
	log "cgroup v2 in a VM: the whole runtime conformance suite against berth-runtime"
	CGO_ENABLED=0 go test -c -o /tmp/berth-integration.test ./test/integration
	test/qemu/run.sh -t 600 -f bin/berth-runtime:/work/bin/berth-runtime \
		-f bin/berth-nsenter:/work/bin/berth-nsenter \
		-e BERTH_TEST_RUNTIME=/work/bin/berth-runtime \
		/tmp/berth-integration.test
fi
log "all tests passed"
