package rootfs

import (
	"errors"
	"fmt"
	"os"

	"github.com/berthproject/berth/internal/fsroot"
	"golang.org/x/sys/unix"
)

// Finalize makes read-only what had to stay writable until now. It runs
// inside the container's root after Enter, with root nil, or before Enter
// with root the rootfs (opened after Prepare), every path resolved below it:
//
//  1. a /dev mounted with "ro" becomes read-only (its devices exist now);
//  2. linux.maskedPaths: files get /dev/null bound over them, directories an
//     empty read-only tmpfs; paths that do not exist are skipped;
//  3. linux.readonlyPaths: bound onto themselves and made read-only together
//     with every mount below them;
//  4. with root.readonly, "/" is remounted read-only, keeping its nosuid,
//     nodev, noexec and atime flags.
func Finalize(c *Config, root *os.File) error {
	entered := root == nil
	if entered {
		var err error
		if root, err = os.OpenFile("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
			return fmt.Errorf("open /: %w", err)
		}
		defer root.Close()
	}

	if kind, opts := devMount(c); kind == devFresh && opts.Flags&unix.MS_RDONLY != 0 {
		if err := readonlyMount(root, "/dev"); err != nil {
			return err
		}
	}
	for i, p := range c.MaskedPaths {
		if err := maskPath(root, p, c.MountLabel); err != nil {
			return fmt.Errorf("linux.maskedPaths[%d]: %w", i, err)
		}
	}
	for i, p := range c.ReadonlyPaths {
		if err := readonlyPath(root, p); err != nil {
			return fmt.Errorf("linux.readonlyPaths[%d]: %w", i, err)
		}
	}
	if c.Readonly {
		if !entered {
			if err := setAttr(root, unix.MOUNT_ATTR_RDONLY, 0, false); err != nil {
				return fmt.Errorf("make the rootfs read-only: %w", err)
			}
		} else if err := readonlyRoot(); err != nil {
			return err
		}
	}
	return nil
}

// maskPath hides p: /dev/null over a file, an empty read-only tmpfs over a
// directory. The container's /dev/null must really be the null device (1:3),
// or a container could have runc-style maskedPaths bind anything it likes over
// /proc files (CVE-2025-31133).
func maskPath(root *os.File, p, label string) error {
	f, err := fsroot.Open(root, p, unix.O_PATH)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("mask %s: %w", p, err)
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return fmt.Errorf("mask %s: %w", p, err)
	}
	var mnt *os.File
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		data := ""
		if label != "" {
			data = fmt.Sprintf("context=%q", label)
		}
		mnt, err = fsroot.Mount(root, f, "tmpfs", "tmpfs", unix.MS_RDONLY, data)
	} else {
		null, nerr := devNull(root)
		if nerr != nil {
			return fmt.Errorf("mask %s: %w", p, nerr)
		}
		defer null.Close()
		mnt, err = fsroot.Mount(root, f, fsroot.FdPath(null), "", unix.MS_BIND, "")
	}
	if err != nil {
		return fmt.Errorf("mask %s: %w", p, err)
	}
	return mnt.Close()
}

// devNull opens the container's /dev/null and checks it is the null device.
func devNull(root *os.File) (*os.File, error) {
	null, err := fsroot.Open(root, "/dev/null", unix.O_PATH)
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(null.Fd()), &st); err != nil {
		null.Close()
		return nil, fmt.Errorf("stat /dev/null: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(st.Rdev) != 1 || unix.Minor(st.Rdev) != 3 {
		null.Close()
		return nil, fmt.Errorf("the container's /dev/null is not the null device (mode %#o, device %d:%d)", st.Mode, unix.Major(st.Rdev), unix.Minor(st.Rdev))
	}
	return null, nil
}

// readonlyPath binds p onto itself and makes it and all mounts below it
// read-only. Missing paths are skipped.
func readonlyPath(root *os.File, p string) error {
	f, err := fsroot.Open(root, p, unix.O_PATH)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read-only %s: %w", p, err)
	}
	defer f.Close()
	mnt, err := fsroot.Mount(root, f, fsroot.FdPath(f), "", unix.MS_BIND|unix.MS_REC, "")
	if err != nil {
		return fmt.Errorf("read-only %s: %w", p, err)
	}
	defer mnt.Close()
	if err := setAttr(mnt, unix.MOUNT_ATTR_RDONLY, 0, true); err != nil {
		return fmt.Errorf("read-only %s: %w", p, err)
	}
	return nil
}

// readonlyMount makes the mount at p (a mount point) read-only.
func readonlyMount(root *os.File, p string) error {
	f, err := fsroot.Open(root, p, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return fmt.Errorf("read-only %s: %w", p, err)
	}
	defer f.Close()
	if err := setAttr(f, unix.MOUNT_ATTR_RDONLY, 0, false); err != nil {
		return fmt.Errorf("read-only %s: %w", p, err)
	}
	return nil
}

// readonlyRoot remounts "/" read-only. The remount repeats the mount's other
// flags (read with statfs), which a user namespace has locked and a remount
// must not drop.
func readonlyRoot() error {
	var st unix.Statfs_t
	if err := unix.Statfs("/", &st); err != nil {
		return fmt.Errorf("statfs /: %w", err)
	}
	flags := statfsFlags(st.Flags) | unix.MS_RDONLY | unix.MS_BIND | unix.MS_REMOUNT
	if err := unix.Mount("", "/", "", flags, ""); err != nil {
		return fmt.Errorf("remount / read-only: %w", err)
	}
	return nil
}
