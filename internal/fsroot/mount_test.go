package fsroot

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// childEnv names the temp dir the re-executed test binary works in; its
// presence makes TestMain run mountChild instead of the tests.
const childEnv = "BERTH_FSROOT_TEST_MOUNT_CHILD"

func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		os.Exit(mountChild(dir))
	}
	os.Exit(m.Run())
}

// TestMountLandsOnTarget runs mountChild in a new mount namespace: it mounts
// through descriptors resolved inside a hostile root with both resolvers and
// reports one line per check.
func TestMountLandsOnTarget(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts in a private mount namespace")
	}
	tmp, root := hostile(t)
	root.Close()
	hostBefore := readMountinfo(t)

	cmd := exec.Command("/proc/self/exe", "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+tmp)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("mount child: %v\n%s", err, out)
	}
	passed := 0
	s := bufio.NewScanner(bytes.NewReader(out))
	for s.Scan() {
		line := s.Text()
		switch {
		case strings.HasPrefix(line, "PASS "):
			passed++
		case strings.HasPrefix(line, "FAIL "):
			t.Error(strings.TrimPrefix(line, "FAIL "))
		}
	}
	if want := 2 * len(mountChecks); passed != want {
		t.Errorf("%d checks passed, want %d; child output:\n%s", passed, want, out)
	}
	if after := readMountinfo(t); after != hostBefore {
		t.Errorf("host mount table changed:\n%s\nwas:\n%s", after, hostBefore)
	}
	if _, err := os.Stat(filepath.Join(tmp, "mnt")); err == nil {
		t.Errorf("%s/mnt was created outside the root", tmp)
	}
}

func readMountinfo(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// mountChecks run in the child, each against a fresh open of the hostile root
// at <tmp>/root. A check returns nil when the behaviour is right.
var mountChecks = []struct {
	name string
	run  func(r resolver, tmp string, root *os.File) error
}{
	{"tmpfs through an escaping symlink lands inside the root", func(r resolver, tmp string, root *os.File) error {
		target, err := r.mkdirAll(root, "a/dir/up/mnt-tmpfs", 0o755)
		if err != nil {
			return err
		}
		defer target.Close()
		m, err := r.mount(root, target, "tmpfs", "tmpfs", 0, "size=1m")
		if err != nil {
			return err
		}
		defer m.Close()
		p, err := Path(m)
		if err != nil {
			return err
		}
		if want := filepath.Join(tmp, "root", "mnt-tmpfs"); p != want {
			return fmt.Errorf("new mount is at %s, want %s", p, want)
		}
		var fs unix.Statfs_t
		if err := unix.Fstatfs(int(m.Fd()), &fs); err != nil {
			return err
		}
		if fs.Type != unix.TMPFS_MAGIC {
			return fmt.Errorf("returned descriptor is on fs type %#x, want tmpfs", fs.Type)
		}
		return nil
	}},
	{"bind of a file onto a created file target", func(r resolver, tmp string, root *os.File) error {
		target, err := r.mkFile(root, "abs/bound", 0o644)
		if err != nil {
			return err
		}
		defer target.Close()
		m, err := r.mount(root, target, filepath.Join(tmp, "secret"), "", unix.MS_BIND, "")
		if err != nil {
			return err
		}
		defer m.Close()
		data, err := os.ReadFile(filepath.Join(tmp, "root", "etc", "bound"))
		if err != nil {
			return err
		}
		if string(data) != "host" {
			return fmt.Errorf("bound file reads %q, want %q", data, "host")
		}
		return nil
	}},
	{"second mount on the same target stacks on top", func(r resolver, tmp string, root *os.File) error {
		target, err := r.mkdirAll(root, "stack", 0o755)
		if err != nil {
			return err
		}
		defer target.Close()
		for i := range 2 {
			m, err := r.mount(root, target, "tmpfs", "tmpfs", 0, "size=1m")
			if err != nil {
				return fmt.Errorf("mount %d: %w", i, err)
			}
			m.Close()
		}
		return nil
	}},
	{"target outside the root is refused", func(r resolver, tmp string, root *os.File) error {
		outside, err := os.OpenFile(tmp, unix.O_PATH|unix.O_DIRECTORY, 0)
		if err != nil {
			return err
		}
		defer outside.Close()
		m, err := r.mount(root, outside, "tmpfs", "tmpfs", 0, "")
		if err == nil {
			m.Close()
			return fmt.Errorf("mount on %s succeeded", tmp)
		}
		if !strings.Contains(err.Error(), "outside the root") {
			return fmt.Errorf("error = %v, want one about the root", err)
		}
		return nil
	}},
}

func mountChild(tmp string) int {
	// Keep every mount below in this namespace.
	if err := unix.Mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		fmt.Printf("FAIL make / rslave: %v\n", err)
		return 1
	}
	for _, impl := range resolvers {
		for _, c := range mountChecks {
			root, err := os.OpenFile(filepath.Join(tmp, "root"), unix.O_PATH|unix.O_DIRECTORY, 0)
			if err != nil {
				fmt.Printf("FAIL open root: %v\n", err)
				return 1
			}
			if err := c.run(impl.r, tmp, root); err != nil {
				fmt.Printf("FAIL %s: %s: %v\n", impl.name, c.name, err)
			} else {
				fmt.Printf("PASS %s: %s\n", impl.name, c.name)
			}
			root.Close()
		}
	}
	return 0
}
