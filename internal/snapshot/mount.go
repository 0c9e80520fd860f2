package snapshot

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// mountFlags are the option words that are mount(2) flags, not data.
var mountFlags = map[string]struct {
	clear bool
	flag  uintptr
}{
	"ro":          {false, unix.MS_RDONLY},
	"rw":          {true, unix.MS_RDONLY},
	"bind":        {false, unix.MS_BIND},
	"rbind":       {false, unix.MS_BIND | unix.MS_REC},
	"nosuid":      {false, unix.MS_NOSUID},
	"suid":        {true, unix.MS_NOSUID},
	"nodev":       {false, unix.MS_NODEV},
	"dev":         {true, unix.MS_NODEV},
	"noexec":      {false, unix.MS_NOEXEC},
	"exec":        {true, unix.MS_NOEXEC},
	"noatime":     {false, unix.MS_NOATIME},
	"nodiratime":  {false, unix.MS_NODIRATIME},
	"relatime":    {false, unix.MS_RELATIME},
	"strictatime": {false, unix.MS_STRICTATIME},
	"sync":        {false, unix.MS_SYNCHRONOUS},
}

// parseOptions splits mount options into flags and filesystem data.
func parseOptions(options []string) (flags uintptr, data []string) {
	for _, o := range options {
		if f, ok := mountFlags[o]; ok {
			if f.clear {
				flags &^= f.flag
			} else {
				flags |= f.flag
			}
			continue
		}
		data = append(data, o)
	}
	return flags, data
}

// MountAll makes mounts on target, in order. On failure the ones already
// made are unmounted.
func MountAll(mounts []Mount, target string) error {
	for i, m := range mounts {
		if err := mountOne(m, target); err != nil {
			for j := 0; j < i; j++ {
				unix.Unmount(target, unix.UMOUNT_NOFOLLOW)
			}
			return fmt.Errorf("mount %s %s on %s: %w", m.Type, m.Source, target, err)
		}
	}
	return nil
}

func mountOne(m Mount, target string) error {
	flags, data := parseOptions(m.Options)
	if m.Type == "bind" {
		flags |= unix.MS_BIND
	}
	if flags&unix.MS_BIND != 0 {
		// A bind mount ignores MS_RDONLY: read-only takes a remount.
		if err := unix.Mount(m.Source, target, "", flags&^unix.MS_RDONLY, ""); err != nil {
			return err
		}
		if flags&unix.MS_RDONLY != 0 {
			remount := unix.MS_REMOUNT | unix.MS_BIND | (flags &^ unix.MS_REC)
			if err := unix.Mount("", target, "", remount, ""); err != nil {
				unix.Unmount(target, unix.UMOUNT_NOFOLLOW)
				return fmt.Errorf("remount read-only: %w", err)
			}
		}
		return nil
	}
	joined := strings.Join(data, ",")
	if m.Type == "overlay" && len(joined) >= pageSize {
		return mountLongOverlay(m, target, flags, data)
	}
	return unix.Mount(m.Source, target, m.Type, flags, joined)
}

// pageSize bounds mount(2)'s data (one page, its NUL included).
var pageSize = os.Getpagesize()

// overlayStrategy is how an overlay whose options exceed a page is mounted;
// tests force each one.
type overlayStrategy int

const (
	strategyAuto        overlayStrategy = iota
	strategyFsconfig                    // new mount API, one "lowerdir+" per layer (Linux 6.8+)
	strategyFdLowerdirs                 // mount(2) with each lowerdir as a short /proc/self/fd/N path
)

var forceStrategy = strategyAuto

// mountLongOverlay mounts an overlay with more lower layers than one page of
// options can name: through fsconfig(2), which takes one lower layer per
// call, or else with each lower layer opened and named by its descriptor
// (/proc/self/fd/N: about 18 bytes a layer, so some 200 layers).
func mountLongOverlay(m Mount, target string, flags uintptr, data []string) error {
	var lower []string
	var rest []string
	for _, d := range data {
		if v, ok := strings.CutPrefix(d, "lowerdir="); ok {
			lower = strings.Split(v, ":")
			continue
		}
		rest = append(rest, d)
	}
	if forceStrategy != strategyFdLowerdirs {
		err := mountFsconfig(target, flags, lower, rest)
		if err == nil || forceStrategy == strategyFsconfig || !errors.Is(err, errNoLowerdirPlus) {
			return err
		}
	}
	var fds []int
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	short := make([]string, len(lower))
	for i, l := range lower {
		fd, err := unix.Open(l, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open lower layer %s: %w", l, err)
		}
		fds = append(fds, fd)
		short[i] = "/proc/self/fd/" + strconv.Itoa(fd)
	}
	joined := strings.Join(append([]string{"lowerdir=" + strings.Join(short, ":")}, rest...), ",")
	if len(joined) >= pageSize {
		return fmt.Errorf("%d lower layers do not fit in one page of mount options, and this kernel has no fsconfig lowerdir+", len(lower))
	}
	return unix.Mount(m.Source, target, "overlay", flags, joined)
}

var errNoLowerdirPlus = errors.New(`the kernel does not know overlay's "lowerdir+" (Linux 6.8+)`)

func mountFsconfig(target string, flags uintptr, lower, rest []string) error {
	fsfd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		if errors.Is(err, unix.ENOSYS) {
			return fmt.Errorf("fsopen: %w: %w", err, errNoLowerdirPlus)
		}
		return fmt.Errorf("fsopen overlay: %w", err)
	}
	defer unix.Close(fsfd)
	for i, l := range lower {
		if err := unix.FsconfigSetString(fsfd, "lowerdir+", l); err != nil {
			if i == 0 && errors.Is(err, unix.EINVAL) {
				return fmt.Errorf("fsconfig lowerdir+ %s: %w: %w", l, err, errNoLowerdirPlus)
			}
			return fmt.Errorf("fsconfig lowerdir+ %s: %w", l, err)
		}
	}
	for _, o := range rest {
		k, v, hasValue := strings.Cut(o, "=")
		if hasValue {
			err = unix.FsconfigSetString(fsfd, k, v)
		} else {
			err = unix.FsconfigSetFlag(fsfd, k)
		}
		if err != nil {
			return fmt.Errorf("fsconfig %s: %w", o, err)
		}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return fmt.Errorf("fsconfig create: %w", err)
	}
	var attr int
	if flags&unix.MS_RDONLY != 0 {
		attr |= unix.MOUNT_ATTR_RDONLY
	}
	if flags&unix.MS_NOSUID != 0 {
		attr |= unix.MOUNT_ATTR_NOSUID
	}
	if flags&unix.MS_NODEV != 0 {
		attr |= unix.MOUNT_ATTR_NODEV
	}
	if flags&unix.MS_NOEXEC != 0 {
		attr |= unix.MOUNT_ATTR_NOEXEC
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, attr)
	if err != nil {
		return fmt.Errorf("fsmount: %w", err)
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount to %s: %w", target, err)
	}
	return nil
}

// Unmount removes every mount stacked on target (nothing mounted is not an
// error), retrying a busy one for a moment.
func Unmount(target string) error {
	for range 64 {
		err := unix.Unmount(target, unix.UMOUNT_NOFOLLOW)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return nil // not (or no longer) a mount point
		}
		if errors.Is(err, unix.EBUSY) {
			if err := retryBusy(target); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("unmount %s: %w", target, err)
		}
	}
	return fmt.Errorf("unmount %s: still mounted after 64 unmounts", target)
}

func retryBusy(target string) error {
	for i := range 50 {
		time.Sleep(time.Duration(i+1) * 2 * time.Millisecond)
		err := unix.Unmount(target, unix.UMOUNT_NOFOLLOW)
		if err == nil || errors.Is(err, unix.EINVAL) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("unmount %s: %w", target, err)
		}
	}
	return fmt.Errorf("unmount %s: %w", target, unix.EBUSY)
}
