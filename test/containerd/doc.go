// Package containerdtest proves that containerd drives berth-runtime: its
// tests start a containerd of their own, import a busybox image they build,
// and run containers with ctr through containerd's runc shim
// (io.containerd.runc.v2) with the shim's runc binary set to
// bin/berth-runtime. See README.md.
package containerdtest
