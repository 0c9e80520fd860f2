package network

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/berthproject/berth/internal/network/store"
)

const envHelper = "BERTH_NETWORK_TEST_HELPER"

// TestHelperProcess is not a test: it is the other process of
// TestConcurrentAttach (it returns at once unless envHelper is set).
func TestHelperProcess(t *testing.T) {
	spec := os.Getenv(envHelper)
	if spec == "" {
		return
	}
	dir, prefix, _ := strings.Cut(spec, ":")
	k := newFakeKernel()
	k.portHi = 40999
	m, err := newManager(Config{Dir: dir}, func() (kernel, error) { return k, nil })
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var wg sync.WaitGroup
	for i := 0; i < 25; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			id := fmt.Sprintf("%s-%d", prefix, i)
			if _, err := m.Attach(ctx, AttachOptions{ContainerID: id, ContainerName: id, NetNS: "/ns/" + id, Network: "bridge",
				Ports: []PortRequest{{Proto: "tcp", ContainerPort: 80}}}); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
		}(i)
	}
	wg.Wait()
	os.Exit(0)
}

// TestConcurrentAttach attaches 25 containers from each of four processes
// at once: every container gets an address and a host port of its own.
func TestConcurrentAttach(t *testing.T) {
	dir := t.TempDir()
	var cmds []*exec.Cmd
	for p := 0; p < 4; p++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s:p%d", envHelper, dir, p))
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	for _, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("helper process: %v", err)
		}
	}
	s, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	st2, err := s.Read()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(st2.Endpoints); n != 100 {
		t.Fatalf("%d endpoints recorded, want 100", n)
	}
	addrs, ports := map[string]string{}, map[uint16]string{}
	for _, e := range st2.Endpoints {
		if other, dup := addrs[e.IPv4.String()]; dup {
			t.Errorf("address %s given to %s and %s", e.IPv4, other, e.ContainerID)
		}
		addrs[e.IPv4.String()] = e.ContainerID
		if len(e.Ports) != 1 {
			t.Fatalf("%s has ports %v", e.ContainerID, e.Ports)
		}
		if other, dup := ports[e.Ports[0].HostPort]; dup {
			t.Errorf("host port %d given to %s and %s", e.Ports[0].HostPort, other, e.ContainerID)
		}
		ports[e.Ports[0].HostPort] = e.ContainerID
	}
}
