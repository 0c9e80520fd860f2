// Package testrootfs builds the small busybox root filesystem that the
// runtime tests use as a container image, and copies it into bundles.
//
// The tree is made from the host's static busybox (Debian's busybox-static):
//
//	/bin/busybox            the static binary
//	/bin/<applet>           a symlink to busybox for every applet `busybox --list` names
//	/etc/passwd, /etc/group root (0), nobody (65534) and user (1000)
//	/tmp                    mode 1777
//	/proc /sys /dev /root /home/user  empty mount points and homes
//
// Build it once per test binary and Copy it into each bundle: it is about
// 2 MB, so a copy is cheaper than the bookkeeping of a shared bind mount.
package testrootfs

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// DefaultBusybox is where Debian's busybox-static installs the binary.
const DefaultBusybox = "/bin/busybox"

const passwdContent = `root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
user:x:1000:1000:user:/home/user:/bin/sh
`

const group = `root:x:0:
nobody:x:65534:
user:x:1000:
`

// Build creates the busybox root filesystem in dir (which may exist and
// should be empty) from the busybox binary at busybox.
func Build(dir, busybox string) error {
	applets, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		return fmt.Errorf("list applets of %s: %w", busybox, err)
	}
	for _, d := range []string{"bin", "etc", "proc", "sys", "dev", "root", "home/user"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "tmp"), 0o777); err != nil && !os.IsExist(err) {
		return fmt.Errorf("create tmp: %w", err)
	}
	// Mkdir applies the umask; tmp must be world writable and sticky.
	if err := os.Chmod(filepath.Join(dir, "tmp"), os.ModeSticky|0o777); err != nil {
		return fmt.Errorf("chmod tmp: %w", err)
	}
	if os.Geteuid() == 0 {
		if err := os.Chown(filepath.Join(dir, "home/user"), 1000, 1000); err != nil {
			return fmt.Errorf("chown home/user: %w", err)
		}
	}
	if err := copyFile(busybox, filepath.Join(dir, "bin/busybox"), 0o755); err != nil {
		return err
	}
	for _, name := range strings.Fields(string(applets)) {
		if name == "busybox" || strings.Contains(name, "/") {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", name)); err != nil && !os.IsExist(err) {
			return fmt.Errorf("link applet %s: %w", name, err)
		}
	}
	files := map[string]string{"etc/passwd": passwdContent, "etc/group": group, "etc/hostname": "berth\n"}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	return nil
}

// Copy copies the tree at src to dst, keeping modes, owners and symlinks.
// dst must not exist yet.
func Copy(src, dst string) error {
	return filepath.Walk(src, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return fmt.Errorf("walk %s: %w", path, err)
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return fmt.Errorf("relative path of %s: %w", path, err)
		}
		target := filepath.Join(dst, rel)
		switch mode := info.Mode(); {
		case mode.IsDir():
			if err := os.Mkdir(target, mode.Perm()); err != nil {
				return fmt.Errorf("create %s: %w", target, err)
			}
			// Mkdir applies the umask and drops sticky bits: set them exactly.
			if err := os.Chmod(target, mode&(os.ModePerm|os.ModeSticky)); err != nil {
				return fmt.Errorf("chmod %s: %w", target, err)
			}
		case mode&os.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return fmt.Errorf("read link %s: %w", path, err)
			}
			if err := os.Symlink(link, target); err != nil {
				return fmt.Errorf("create link %s: %w", target, err)
			}
		case mode.IsRegular():
			if err := copyFile(path, target, mode.Perm()); err != nil {
				return err
			}
		default:
			return fmt.Errorf("copy %s: unsupported file type %v", path, mode.Type())
		}
		// Only root can give files away; others get their own copies.
		if st, ok := ownerOf(info); ok && os.Geteuid() == 0 {
			if err := os.Lchown(target, st.uid, st.gid); err != nil {
				return fmt.Errorf("chown %s: %w", target, err)
			}
		}
		return nil
	})
}

func copyFile(src, dst string, perm os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("open %s: %w", src, err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("create %s: %w", dst, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("close %s: %w", dst, err)
	}
	return nil
}

// Applets returns the applet names of the busybox binary, for callers that
// want to check a tree is complete.
func Applets(busybox string) ([]string, error) {
	out, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("list applets of %s: %w", busybox, err)
	}
	return strings.Fields(string(bytes.TrimSpace(out))), nil
}
