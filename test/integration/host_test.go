package integration

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func killProcess(pid int) { unix.Kill(pid, unix.SIGKILL) }

func unmount(path string) { unix.Unmount(path, unix.MNT_DETACH) }

// nsInode is the namespace link of a host process, e.g. "net:[4026531840]".
func nsLink(t *testing.T, pid int, ns string) string {
	t.Helper()
	link, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, ns))
	if err != nil {
		t.Fatalf("read namespace link %s of pid %d: %v", ns, pid, err)
	}
	return link
}

// processAlive reports whether pid exists and is not a zombie.
func processAlive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// assertNoLeftovers checks that the container left nothing behind: `list`
// does not show it, its state directory holds nothing for it, its cgroup
// directories are gone, no process belongs to it and nothing is mounted in
// its bundle.
func assertNoLeftovers(t *testing.T, c *container) {
	t.Helper()
	r := c.rt("list", "--format", "json")
	if r.code == 0 {
		var list []struct {
			ID string `json:"id"`
		}
		if out := strings.TrimSpace(r.stdout); out != "" && out != "null" {
			if err := json.Unmarshal([]byte(out), &list); err != nil {
				t.Errorf("parse `list --format json` output %q: %v", out, err)
			}
		}
		for _, e := range list {
			t.Errorf("`list` still shows container %s", e.ID)
		}
	} else if _, err := os.Stat(c.root); err == nil {
		t.Errorf("list: %v", r)
	}
	if entries, err := os.ReadDir(c.root); err == nil {
		for _, e := range entries {
			t.Errorf("state dir %s still holds %s", c.root, e.Name())
		}
	}
	for _, dir := range cgroupDirs(c.cgroupPath()) {
		if _, err := os.Stat(dir); err == nil {
			t.Errorf("cgroup dir %s still exists", dir)
		}
	}
	for _, pid := range processesOf(c) {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		t.Errorf("process %d (%s) still belongs to the container", pid, strings.ReplaceAll(string(cmdline), "\x00", " "))
	}
	for _, m := range mountsUnder(c.dir) {
		t.Errorf("%s is still mounted", m)
	}
}

// hostFileSum is a cheap fingerprint of a host file: size and content hash.
func hostFileSum(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return fmt.Sprintf("%d:%x", len(data), sha256.Sum256(data))
}

// writeJSON writes v as JSON to dir/name and returns the path.
func writeJSON(t *testing.T, dir, name string, v any) string {
	t.Helper()
	data, err := json.MarshalIndent(v, "", "\t")
	if err != nil {
		t.Fatalf("encode %s: %v", name, err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
	return path
}

// sleepBriefly is an observation window for tests that must see that
// something does not happen; never use it to wait for something.
func sleepBriefly() { time.Sleep(50 * time.Millisecond) }
