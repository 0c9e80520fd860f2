// Package cgroups creates, limits, measures, freezes and removes one cgroup
// for berth-runtime, on cgroup v1, pure cgroup v2 and hybrid hosts.
//
// A container's cgroup is named by one absolute path ("/berth/abc"), the same
// in every hierarchy. [Resolve] turns an OCI linux.cgroupsPath into that
// path; [New] returns a [Manager] for it on the host's layout, which it reads
// from /proc/self/mountinfo ([DetectLayout]). Short-lived runtime commands
// rebuild the manager from the stored path: a Manager holds no state beyond
// the directories it names, and the kernel files are the truth.
//
// Layouts and who does what:
//
//	layout  hierarchies                         Set, Stats          Freeze, Kill, Pids
//	v1      one mount per controller            v1 files            freezer.state, signal each pid
//	v2      cgroup2 at Root                     v2 files + eBPF     cgroup.freeze, cgroup.kill
//	hybrid  v1 mounts + cgroup2 (Root/unified)  a resource group    v1 (the v1 freezer)
//	                                            goes to v1 when its
//	                                            controller is mounted
//	                                            there, else to v2
//
// On hybrid hosts such as systemd's default before v2 (cgroup2 at
// /sys/fs/cgroup/unified owning only hugetlb), the manager joins both: the
// v1 controllers carry memory, cpu, pids, blkio, devices and the freezer, and
// the cgroup2 directory carries hugetlb. crun refuses such hosts; we do not.
//
// Set is split in two steps, after the project's rule that mechanisms return
// descriptions: planV1 and planV2 turn an OCI LinuxResources into a list of
// file writes (pure apart from reading current values that decide the
// order, e.g. memory.limit_in_bytes against memory.memsw.limit_in_bytes),
// and one executor performs them. The lists are golden-tested without root.
// Device rules become devices.allow/devices.deny lines on v1 and an eBPF
// BPF_PROG_TYPE_CGROUP_DEVICE program on v2 (see devices.go).
//
// Conversions follow runc so that the same OCI config gives the same kernel
// values: cpu shares -> cpu.weight is 1 + (shares-2)*9999/262142; OCI
// memory.swap is memory+swap, so v2 memory.swap.max is swap-limit; blkio
// weight (10..1000) -> io.weight is 1 + (weight-10)*9999/990 unless
// io.bfq.weight exists, which takes the value as it is.
package cgroups
