package rootfs

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// Enter makes c.Rootfs the process's root, after Prepare (and the hooks that
// run between them). With pivot_root the old root is detached entirely; with
// NoPivot the rootfs is moved onto "/" and chrooted into, after the host's full
// procfs and sysfs mounts were hidden. The working directory is "/" afterwards.
// A linux.rootfsPropagation other than the private ones is then applied to the
// new "/".
//
// pivot_root, chroot and chdir act on the calling thread's filesystem
// context. In the Go init all threads share it, and Enter must not run on a
// thread that unshared it; the runtime's rootfs thread (PrepareOutside) has
// its own and stays in the container's namespaces until it ends, while
// pivot_root moves the root of the init, whose root was the old one, too.
func Enter(c *Config) error {
	var err error
	if c.NoPivot {
		err = moveRoot(c.Rootfs)
	} else {
		err = pivotRoot(c.Rootfs)
	}
	if err != nil {
		return err
	}
	// Prepare had to keep the rootfs's parent private for pivot_root; the
	// container's root gets the propagation the spec asked for now. Only
	// the root mount itself: the mounts below it already have the root's
	// propagation or the one their own options asked for (an "rshared"
	// bind must stay shared), which a recursive change would undo.
	if prop, ok := rootPropagation[c.RootfsPropagation]; ok && prop&unix.MS_PRIVATE == 0 {
		if err := unix.Mount("", "/", "", prop&^unix.MS_REC, ""); err != nil {
			return fmt.Errorf("set propagation of the container's / to %s: %w", c.RootfsPropagation, err)
		}
	}
	return nil
}

// pivotRoot uses pivot_root(".", "."): the old root ends up mounted on top of the
// new one, where it is detached without needing a directory in the rootfs for
// it.
func pivotRoot(rootfs string) error {
	oldRoot, err := unix.Open("/", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open old root: %w", err)
	}
	defer unix.Close(oldRoot)
	newRoot, err := unix.Open(rootfs, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open rootfs %s: %w", rootfs, err)
	}
	defer unix.Close(newRoot)

	if err := unix.Fchdir(newRoot); err != nil {
		return fmt.Errorf("chdir to rootfs %s: %w", rootfs, err)
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root into %s: %w", rootfs, err)
	}
	// The kernel does not promise what "." is now; go to the old root
	// explicitly.
	if err := unix.Fchdir(oldRoot); err != nil {
		return fmt.Errorf("chdir to old root: %w", err)
	}
	// rslave first, so the unmount cannot propagate to the host's mounts.
	if err := unix.Mount("", ".", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make old root rslave: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("chdir /: %w", err)
	}
	return nil
}

// moveRoot is --no-pivot: MS_MOVE the rootfs onto "/" and chroot. The host's
// mounts stay in the namespace, so first every full procfs and sysfs mount
// outside the rootfs is detached (or covered with a tmpfs when that is refused):
// the kernel allows a new procfs or sysfs mount, as in a user namespace, only
// where a full one is visible, and a chroot is not much of a wall.
func moveRoot(rootfs string) error {
	infos, err := readMountinfo()
	if err != nil {
		return err
	}
	// Deepest first, so a parent is never gone before its children.
	sort.Slice(infos, func(i, j int) bool { return len(infos[i].Mountpoint) > len(infos[j].Mountpoint) })
	for _, mi := range infos {
		if mi.FSType != "proc" && mi.FSType != "sysfs" {
			continue
		}
		if mi.Mountpoint == rootfs || strings.HasPrefix(mi.Mountpoint, strings.TrimSuffix(rootfs, "/")+"/") {
			continue
		}
		if err := unix.Mount("", mi.Mountpoint, "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
			if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
				continue // already gone with a mount above it
			}
			return fmt.Errorf("make %s rslave: %w", mi.Mountpoint, err)
		}
		err := unix.Unmount(mi.Mountpoint, unix.MNT_DETACH)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EPERM) {
			err = unix.Mount("tmpfs", mi.Mountpoint, "tmpfs", unix.MS_RDONLY, "")
		}
		if err != nil {
			return fmt.Errorf("hide %s %s: %w", mi.FSType, mi.Mountpoint, err)
		}
	}
	if err := unix.Chdir(rootfs); err != nil {
		return fmt.Errorf("chdir to rootfs %s: %w", rootfs, err)
	}
	if err := unix.Mount(rootfs, "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move rootfs %s onto /: %w", rootfs, err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot into %s: %w", rootfs, err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("chdir /: %w", err)
	}
	return nil
}
