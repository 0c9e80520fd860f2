package rootfs

import (
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// MountOptions is what an OCI mount's "options" list means to mount(2) and
// friends. ParseMountOptions builds it; Validate (in the parent) and Prepare (in
// the init) use the same parse.
type MountOptions struct {
	// Flags are the MS_* flags to pass to mount(2): MS_BIND (and MS_REC for
	// "rbind"), MS_RDONLY, MS_NOSUID, ... A later option wins over an earlier
	// one ("ro,rw" is rw).
	Flags uintptr
	// Cleared are the MS_* flags an option explicitly turned off ("rw", "suid",
	// "dev", "exec", "atime", ...). A fresh mount ignores them; a bind mount,
	// which starts with its source's flags, has them removed.
	Cleared uintptr
	// Propagation lists the propagation changes in order (MS_SHARED, MS_SLAVE,
	// MS_PRIVATE, MS_UNBINDABLE, each with MS_REC for the "r" forms), applied
	// after the mount exists.
	Propagation []uintptr
	// RecursiveSet and RecursiveClear are MOUNT_ATTR_* bits from the recursive
	// options ("rro", "rnosuid", "rrw", ...), applied with mount_setattr(2) and
	// AT_RECURSIVE to the mount and every mount below it.
	RecursiveSet, RecursiveClear uint64
	// Data is the filesystem-specific part, comma-separated, in order
	// ("size=64m,mode=755").
	Data string
}

// Bind reports whether the options ask for a bind mount ("bind" or "rbind").
func (o MountOptions) Bind() bool { return o.Flags&unix.MS_BIND != 0 }

// Recursive reports whether a bind mount takes the mounts below its source too
// ("rbind").
func (o MountOptions) Recursive() bool { return o.Flags&unix.MS_REC != 0 }

// flagOption is a mount(8) word: the MS_* flag it sets, or clears when clear is
// true.
type flagOption struct {
	flag  uintptr
	clear bool
}

var flagOptions = map[string]flagOption{
	"defaults":      {0, false},
	"ro":            {unix.MS_RDONLY, false},
	"rw":            {unix.MS_RDONLY, true},
	"nosuid":        {unix.MS_NOSUID, false},
	"suid":          {unix.MS_NOSUID, true},
	"nodev":         {unix.MS_NODEV, false},
	"dev":           {unix.MS_NODEV, true},
	"noexec":        {unix.MS_NOEXEC, false},
	"exec":          {unix.MS_NOEXEC, true},
	"sync":          {unix.MS_SYNCHRONOUS, false},
	"async":         {unix.MS_SYNCHRONOUS, true},
	"dirsync":       {unix.MS_DIRSYNC, false},
	"mand":          {unix.MS_MANDLOCK, false},
	"nomand":        {unix.MS_MANDLOCK, true},
	"noatime":       {unix.MS_NOATIME, false},
	"atime":         {unix.MS_NOATIME, true},
	"nodiratime":    {unix.MS_NODIRATIME, false},
	"diratime":      {unix.MS_NODIRATIME, true},
	"relatime":      {unix.MS_RELATIME, false},
	"norelatime":    {unix.MS_RELATIME, true},
	"strictatime":   {unix.MS_STRICTATIME, false},
	"nostrictatime": {unix.MS_STRICTATIME, true},
	"lazytime":      {unix.MS_LAZYTIME, false},
	"nolazytime":    {unix.MS_LAZYTIME, true},
	"iversion":      {unix.MS_I_VERSION, false},
	"noiversion":    {unix.MS_I_VERSION, true},
	"silent":        {unix.MS_SILENT, false},
	"loud":          {unix.MS_SILENT, true},
	"nosymfollow":   {unix.MS_NOSYMFOLLOW, false},
	"symfollow":     {unix.MS_NOSYMFOLLOW, true},
	"bind":          {unix.MS_BIND, false},
	"rbind":         {unix.MS_BIND | unix.MS_REC, false},
}

var propagationOptions = map[string]uintptr{
	"private":     unix.MS_PRIVATE,
	"rprivate":    unix.MS_PRIVATE | unix.MS_REC,
	"shared":      unix.MS_SHARED,
	"rshared":     unix.MS_SHARED | unix.MS_REC,
	"slave":       unix.MS_SLAVE,
	"rslave":      unix.MS_SLAVE | unix.MS_REC,
	"unbindable":  unix.MS_UNBINDABLE,
	"runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
}

// recursiveOptions are the OCI runtime-spec's recursive mount attributes.
var recursiveOptions = map[string]struct {
	attr  uint64
	clear bool
}{
	"rro":            {unix.MOUNT_ATTR_RDONLY, false},
	"rrw":            {unix.MOUNT_ATTR_RDONLY, true},
	"rnosuid":        {unix.MOUNT_ATTR_NOSUID, false},
	"rsuid":          {unix.MOUNT_ATTR_NOSUID, true},
	"rnodev":         {unix.MOUNT_ATTR_NODEV, false},
	"rdev":           {unix.MOUNT_ATTR_NODEV, true},
	"rnoexec":        {unix.MOUNT_ATTR_NOEXEC, false},
	"rexec":          {unix.MOUNT_ATTR_NOEXEC, true},
	"rnodiratime":    {unix.MOUNT_ATTR_NODIRATIME, false},
	"rdiratime":      {unix.MOUNT_ATTR_NODIRATIME, true},
	"rnosymfollow":   {unix.MOUNT_ATTR_NOSYMFOLLOW, false},
	"rsymfollow":     {unix.MOUNT_ATTR_NOSYMFOLLOW, true},
	"rnoatime":       {unix.MOUNT_ATTR_NOATIME, false},
	"rstrictatime":   {unix.MOUNT_ATTR_STRICTATIME, false},
	"rrelatime":      {unix.MOUNT_ATTR_RELATIME, false},
	"ratime":         {unix.MOUNT_ATTR_NOATIME, true},
	"rnorelatime":    {unix.MOUNT_ATTR_NOATIME, true},
	"rnostrictatime": {unix.MOUNT_ATTR_STRICTATIME, true},
}

// unsupportedOptions are known elsewhere but not implemented by berth; they get
// a clearer error than "unknown".
var unsupportedOptions = map[string]string{
	"remount":      "a spec mount is always a new mount",
	"idmap":        "id-mapped mounts are not supported",
	"ridmap":       "id-mapped mounts are not supported",
	"tmpcopyup":    "copying the image's content into a tmpfs is not supported",
	"copy-symlink": "copying symlinks is not supported",
}

// fsData is what berth knows about the data options of the filesystems it
// mounts itself: bare words and the keys of key=value options. For any other
// filesystem type the data is the kernel's business and passed through.
var fsData = map[string]struct{ words, keys []string }{
	"bind": {},
	"tmpfs": {
		words: []string{"noswap", "inode32", "inode64", "quota", "usrquota", "grpquota"},
		keys:  []string{"size", "nr_blocks", "nr_inodes", "mode", "uid", "gid", "huge", "mpol", "usrquota_block_hardlimit", "usrquota_inode_hardlimit", "grpquota_block_hardlimit", "grpquota_inode_hardlimit"},
	},
	"devpts": {
		words: []string{"newinstance"},
		keys:  []string{"mode", "ptmxmode", "uid", "gid", "max"},
	},
	"proc":   {keys: []string{"hidepid", "gid", "subset"}},
	"sysfs":  {},
	"mqueue": {},
	// The runtime makes the cgroup mounts itself; only flags apply.
	"cgroup": {},
	"cgroup2": {
		words: []string{"nsdelegate", "memory_recursiveprot", "memory_localevents", "favordynmods", "memory_hugetlb_accounting", "pids_localevents"},
	},
}

// lsmKeys are LSM mount options every filesystem accepts.
var lsmKeys = []string{"context", "fscontext", "defcontext", "rootcontext"}

// ParseMountOptions parses the options of a mount of type fstype. A mount with a
// "bind" or "rbind" option is a bind mount whatever its type says. For the types
// berth mounts itself (bind, tmpfs, devpts, proc, sysfs, mqueue, cgroup,
// cgroup2) an option that is neither a mount flag, a propagation or recursive
// option, nor one of that filesystem's data options is an error; for other types
// unknown words go to Data for the kernel to judge.
func ParseMountOptions(fstype string, options []string) (MountOptions, error) {
	var o MountOptions
	var data []string
	recursiveAtime := false
	for _, opt := range options {
		if opt == "bind" || opt == "rbind" {
			fstype = "bind"
			break
		}
	}
	for _, opt := range options {
		if f, ok := flagOptions[opt]; ok {
			if f.clear {
				o.Flags &^= f.flag
				o.Cleared |= f.flag
			} else {
				o.Flags |= f.flag
				o.Cleared &^= f.flag
			}
			continue
		}
		if p, ok := propagationOptions[opt]; ok {
			o.Propagation = append(o.Propagation, p)
			continue
		}
		if r, ok := recursiveOptions[opt]; ok {
			if strings.HasSuffix(opt, "atime") && !strings.HasSuffix(opt, "diratime") {
				recursiveAtime = true
			}
			if r.clear {
				o.RecursiveClear |= r.attr
				o.RecursiveSet &^= r.attr
			} else {
				o.RecursiveSet |= r.attr
				o.RecursiveClear &^= r.attr
			}
			continue
		}
		if why, ok := unsupportedOptions[opt]; ok {
			return MountOptions{}, fmt.Errorf("unsupported option %q: %s", opt, why)
		}
		if err := checkData(fstype, opt); err != nil {
			return MountOptions{}, err
		}
		data = append(data, opt)
	}
	// An atime mode given recursively replaces the whole atime field.
	// (MOUNT_ATTR_RELATIME is 0, so this is tracked by name.)
	if recursiveAtime {
		o.RecursiveClear |= unix.MOUNT_ATTR__ATIME
	}
	o.Data = strings.Join(data, ",")
	return o, nil
}

// checkData accepts opt as data for fstype, or says why not.
func checkData(fstype, opt string) error {
	known, strict := fsData[fstype]
	if opt == "" {
		return fmt.Errorf("empty option")
	}
	key, value, hasValue := strings.Cut(opt, "=")
	for _, k := range lsmKeys {
		if hasValue && key == k {
			return nil
		}
	}
	if !strict {
		return nil
	}
	if !hasValue {
		for _, w := range known.words {
			if opt == w {
				return nil
			}
		}
		return fmt.Errorf("unknown option %q", opt)
	}
	for _, k := range known.keys {
		if key != k {
			continue
		}
		switch key {
		case "mode", "ptmxmode":
			if _, err := strconv.ParseUint(value, 8, 32); err != nil {
				return fmt.Errorf("option %q: %s must be an octal mode", opt, key)
			}
		case "uid", "gid":
			if _, err := strconv.ParseUint(value, 10, 32); err != nil {
				return fmt.Errorf("option %q: %s must be a number", opt, key)
			}
		}
		return nil
	}
	return fmt.Errorf("unknown option %q for %s", opt, fstype)
}

// setattrOf turns MS_* flags set and cleared into mount_setattr(2) attributes.
// The atime mode is a field, not bits: it is only changed when an atime option
// was given.
func setattrOf(set, cleared uintptr) (attrSet, attrClr uint64) {
	bits := []struct {
		ms   uintptr
		attr uint64
	}{
		{unix.MS_RDONLY, unix.MOUNT_ATTR_RDONLY},
		{unix.MS_NOSUID, unix.MOUNT_ATTR_NOSUID},
		{unix.MS_NODEV, unix.MOUNT_ATTR_NODEV},
		{unix.MS_NOEXEC, unix.MOUNT_ATTR_NOEXEC},
		{unix.MS_NODIRATIME, unix.MOUNT_ATTR_NODIRATIME},
		{unix.MS_NOSYMFOLLOW, unix.MOUNT_ATTR_NOSYMFOLLOW},
	}
	for _, b := range bits {
		if set&b.ms != 0 {
			attrSet |= b.attr
		}
		if cleared&b.ms != 0 {
			attrClr |= b.attr
		}
	}
	const atimeFlags = unix.MS_NOATIME | unix.MS_STRICTATIME | unix.MS_RELATIME
	if (set|cleared)&atimeFlags != 0 {
		attrClr |= unix.MOUNT_ATTR__ATIME
		switch {
		case set&unix.MS_NOATIME != 0:
			attrSet |= unix.MOUNT_ATTR_NOATIME
		case set&unix.MS_STRICTATIME != 0:
			attrSet |= unix.MOUNT_ATTR_STRICTATIME
		default:
			attrSet |= unix.MOUNT_ATTR_RELATIME
		}
	}
	return attrSet, attrClr
}
