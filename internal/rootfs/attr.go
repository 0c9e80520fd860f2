package rootfs

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/berthproject/berth/internal/fsroot"
	"golang.org/x/sys/unix"
)

// setAttr sets and clears MOUNT_ATTR_* on the mount whose root f is, and with
// recursive on every mount below it too, with mount_setattr(2). Unlike a
// remount it leaves the attributes it is not told about alone (a bind mount
// keeps its source's nosuid). Kernels before 5.12 get remounts instead.
func setAttr(f *os.File, set, clr uint64, recursive bool) error {
	flags := uint(unix.AT_EMPTY_PATH)
	if recursive {
		flags |= unix.AT_RECURSIVE
	}
	attr := unix.MountAttr{Attr_set: set, Attr_clr: clr}
	err := unix.MountSetattr(int(f.Fd()), "", flags, &attr)
	if errors.Is(err, unix.ENOSYS) {
		return remountAttr(f, set, clr, recursive)
	}
	if err != nil {
		return fmt.Errorf("mount_setattr %s: %w", f.Name(), err)
	}
	return nil
}

// remountAttr is setAttr with MS_REMOUNT|MS_BIND, for kernels without
// mount_setattr: the new flags are the mount's current ones (statfs) changed as
// asked. Recursion remounts the mounts below, found in mountinfo, one by one.
func remountAttr(f *os.File, set, clr uint64, recursive bool) error {
	targets := []string{fsroot.FdPath(f)}
	if recursive {
		top, err := fsroot.Path(f)
		if err != nil {
			return err
		}
		infos, err := readMountinfo()
		if err != nil {
			return err
		}
		for _, mi := range infos {
			if strings.HasPrefix(mi.Mountpoint, strings.TrimSuffix(top, "/")+"/") {
				targets = append(targets, mi.Mountpoint)
			}
		}
	}
	for _, t := range targets {
		var st unix.Statfs_t
		if err := unix.Statfs(t, &st); err != nil {
			return fmt.Errorf("statfs %s: %w", t, err)
		}
		flags := statfsFlags(st.Flags)
		flags &^= msOfAttr(clr)
		flags |= msOfAttr(set)
		if err := unix.Mount("", t, "", unix.MS_REMOUNT|unix.MS_BIND|flags, ""); err != nil {
			return fmt.Errorf("remount %s: %w", t, err)
		}
	}
	return nil
}

// msOfAttr maps MOUNT_ATTR_* bits to MS_* flags.
func msOfAttr(attr uint64) uintptr {
	var ms uintptr
	bits := []struct {
		attr uint64
		ms   uintptr
	}{
		{unix.MOUNT_ATTR_RDONLY, unix.MS_RDONLY},
		{unix.MOUNT_ATTR_NOSUID, unix.MS_NOSUID},
		{unix.MOUNT_ATTR_NODEV, unix.MS_NODEV},
		{unix.MOUNT_ATTR_NOEXEC, unix.MS_NOEXEC},
		{unix.MOUNT_ATTR_NODIRATIME, unix.MS_NODIRATIME},
		{unix.MOUNT_ATTR_NOSYMFOLLOW, unix.MS_NOSYMFOLLOW},
	}
	for _, b := range bits {
		if attr&b.attr != 0 {
			ms |= b.ms
		}
	}
	switch attr & unix.MOUNT_ATTR__ATIME {
	case unix.MOUNT_ATTR_NOATIME:
		ms |= unix.MS_NOATIME
	case unix.MOUNT_ATTR_STRICTATIME:
		ms |= unix.MS_STRICTATIME
	}
	return ms
}

// stNoSymfollow is ST_NOSYMFOLLOW (Linux 5.10), missing from x/sys.
const stNoSymfollow = 0x2000

// statfsFlags maps statfs(2) f_flags (ST_*) to the MS_* flags a remount must
// repeat to keep them: in a user namespace these are locked, and a remount that
// drops them fails with EPERM.
func statfsFlags(st int64) uintptr {
	var ms uintptr
	bits := []struct {
		st int64
		ms uintptr
	}{
		{unix.ST_RDONLY, unix.MS_RDONLY},
		{unix.ST_NOSUID, unix.MS_NOSUID},
		{unix.ST_NODEV, unix.MS_NODEV},
		{unix.ST_NOEXEC, unix.MS_NOEXEC},
		{unix.ST_SYNCHRONOUS, unix.MS_SYNCHRONOUS},
		{unix.ST_MANDLOCK, unix.MS_MANDLOCK},
		{unix.ST_NOATIME, unix.MS_NOATIME},
		{unix.ST_NODIRATIME, unix.MS_NODIRATIME},
		{unix.ST_RELATIME, unix.MS_RELATIME},
		{stNoSymfollow, unix.MS_NOSYMFOLLOW},
	}
	for _, b := range bits {
		if st&b.st != 0 {
			ms |= b.ms
		}
	}
	return ms
}

// setPropagation applies propagation changes, in order, to the mount whose
// root f is.
func setPropagation(f *os.File, props []uintptr) error {
	for _, prop := range props {
		if err := unix.Mount("", fsroot.FdPath(f), "", prop, ""); err != nil {
			return fmt.Errorf("change propagation of %s: %w", f.Name(), err)
		}
	}
	return nil
}
