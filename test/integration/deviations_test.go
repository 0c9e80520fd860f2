package integration

import (
	"slices"
	"testing"
)

// deviation is a behaviour in which a reference runtime is known to be lax
// about the spec, or which it lacks. A test calls skip to pass over it for
// that reference runtime only: berth is never in a deviation's list.
type deviation struct {
	runtimes []string // the reference runtimes concerned: "runc", "crun"
	why      string
}

func (d deviation) skip(t *testing.T) {
	t.Helper()
	if d.applies() {
		t.Skipf("reference runtime %s %s", rt.name, d.why)
	}
}

// applies reports whether the runtime under test has the deviation, for
// tests that work around it instead of skipping; they log why.
func (d deviation) applies() bool {
	return !isBerth() && slices.Contains(d.runtimes, rt.name)
}

func (d deviation) log(t *testing.T) {
	t.Helper()
	t.Logf("reference runtime %s %s", rt.name, d.why)
}

// The complete list of known deviations of the reference runtimes.
var (
	noTimeNamespace = deviation{[]string{"runc"},
		"(1.1.5) does not support time namespaces or linux.timeOffsets (added in runc 1.2)"}
)

var (
	noEvents   = deviation{[]string{"crun"}, "(1.8.1) has no `events` command"}
	noFeatures = deviation{[]string{"crun"}, "(1.8.1) has no `features` command"}
)

var updateNoUnits = deviation{[]string{"crun"}, "(1.8.1) `update --memory` takes bytes only, not 64M"}

var listTableNames = deviation{[]string{"crun"}, "(1.8.1) `list` prints NAME and PATH columns instead of runc's ID ... OWNER"}

var runcExecUmaskRlimits = deviation{[]string{"runc"},
	"(1.1.5) ignores process.user.umask of an exec'd process (0022 stays) and gives it a soft RLIMIT_NOFILE equal to the hard one"}

var execErrorWords = deviation{[]string{"runc", "crun"},
	"word the failures of exec (a missing program, a directory, a bad cwd) their own way"}

var execEnvReplaces = deviation{[]string{"crun"},
	"(1.8.1) `exec --env` replaces the container's environment instead of adding to it (PATH is lost)"}

var crunTimeNamespace = deviation{[]string{"crun"},
	"(1.8.1) fails to start any container with a time namespace here (\"write to sync socket: Connection reset by peer\"), though the kernel supports it (unshare --time works)"}

var runcRootfsShared = deviation{[]string{"runc"},
	"(1.1.5) leaves the container's root mount private when rootfsPropagation is shared or rshared"}

var crunBindShared = deviation{[]string{"crun"},
	"(1.8.1) leaves a bind mount with the rshared option a slave (master:N, no shared:N) under rootfsPropagation rslave"}

var crunBlkioWeight = deviation{[]string{"crun"},
	"(1.8.1) writes only blkio.weight, which BFQ-only kernels lack (they have blkio.bfq.weight): create fails"}

var runcPoststartAtCreate = deviation{[]string{"runc"},
	"(1.1.5) runs poststart hooks during create, before startContainer and with status created, so a failing poststart hook fails create"}

var containerHookState = deviation{[]string{"crun"},
	"(1.8.1) passes an incomplete state to createContainer/startContainer hooks (pid 0, not 1 as seen inside; for startContainer status \"starting\" and bundle \"/\")"}

var poststartFailureWarns = deviation{[]string{"crun"},
	"(1.8.1) only warns when a poststart hook fails, as runtime-spec 1.0 said; 1.1+ says generate an error and stop the container"}

var startContainerHookNotFatal = deviation{[]string{"runc", "crun"},
	"does not fail start when a startContainer hook fails (the spec says generate an error and stop the container)"}

var dotDotDestinationAccepted = deviation{[]string{"runc", "crun"},
	"accepts a mount destination with .. components, clamping it inside the rootfs, instead of rejecting it"}

var unknownSyscallIgnored = deviation{[]string{"runc", "crun"},
	"silently ignores unknown syscall names in a seccomp profile"}

var leftoverAfterKill = deviation{[]string{"runc", "crun"},
	"after a SIGKILL during create (in a createRuntime hook), `delete --force` exits 0 but leaves the container's cgroup directories (runc 1.1.5 also its init process)"}

var unknownCapabilitySilent = deviation{[]string{"crun"},
	"(1.8.1) accepts an unknown capability name without the warning the spec requires"}

var crunStartHookRace = deviation{[]string{"crun"},
	"(1.8.1) runs startContainer hooks in the container while `start` runs the poststart hooks and returns: poststart may come first, startContainer may end after start returned"}
