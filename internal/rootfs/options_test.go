package rootfs

import (
	"fmt"
	"reflect"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseMountOptions(t *testing.T) {
	cases := []struct {
		fstype  string
		options []string
		want    MountOptions
	}{
		{"proc", nil, MountOptions{}},
		{"tmpfs", []string{"nosuid", "strictatime", "mode=755", "size=65536k"},
			MountOptions{Flags: unix.MS_NOSUID | unix.MS_STRICTATIME, Data: "mode=755,size=65536k"}},
		{"devpts", []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"},
			MountOptions{Flags: unix.MS_NOSUID | unix.MS_NOEXEC, Data: "newinstance,ptmxmode=0666,mode=0620,gid=5"}},
		{"sysfs", []string{"nosuid", "noexec", "nodev", "ro"},
			MountOptions{Flags: unix.MS_NOSUID | unix.MS_NOEXEC | unix.MS_NODEV | unix.MS_RDONLY}},
		{"cgroup", []string{"nosuid", "noexec", "nodev", "relatime", "ro"},
			MountOptions{Flags: unix.MS_NOSUID | unix.MS_NOEXEC | unix.MS_NODEV | unix.MS_RELATIME | unix.MS_RDONLY}},
		{"bind", []string{"rbind", "ro"},
			MountOptions{Flags: unix.MS_BIND | unix.MS_REC | unix.MS_RDONLY}},
		// The option, not the type, makes a bind mount.
		{"none", []string{"bind", "rw", "suid"},
			MountOptions{Flags: unix.MS_BIND, Cleared: unix.MS_RDONLY | unix.MS_NOSUID}},
		// A later option wins.
		{"bind", []string{"bind", "ro", "rw"},
			MountOptions{Flags: unix.MS_BIND, Cleared: unix.MS_RDONLY}},
		{"bind", []string{"bind", "rw", "ro"},
			MountOptions{Flags: unix.MS_BIND | unix.MS_RDONLY}},
		{"tmpfs", []string{"rshared", "private"},
			MountOptions{Propagation: []uintptr{unix.MS_SHARED | unix.MS_REC, unix.MS_PRIVATE}}},
		{"bind", []string{"rbind", "rro", "rnosuid", "rdev"},
			MountOptions{Flags: unix.MS_BIND | unix.MS_REC, RecursiveSet: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID, RecursiveClear: unix.MOUNT_ATTR_NODEV}},
		// A recursive atime option replaces the whole atime field.
		{"bind", []string{"rbind", "rnoatime"},
			MountOptions{Flags: unix.MS_BIND | unix.MS_REC, RecursiveSet: unix.MOUNT_ATTR_NOATIME, RecursiveClear: unix.MOUNT_ATTR__ATIME}},
		{"bind", []string{"rbind", "rrelatime"},
			MountOptions{Flags: unix.MS_BIND | unix.MS_REC, RecursiveClear: unix.MOUNT_ATTR__ATIME}},
		// Types berth does not mount itself pass unknown words to the kernel.
		{"overlay", []string{"lowerdir=/a:/b", "upperdir=/c", "workdir=/d", "userxattr", "ro"},
			MountOptions{Flags: unix.MS_RDONLY, Data: "lowerdir=/a:/b,upperdir=/c,workdir=/d,userxattr"}},
		{"tmpfs", []string{"context=\"system_u:object_r:container_file_t:s0\""},
			MountOptions{Data: "context=\"system_u:object_r:container_file_t:s0\""}},
		{"cgroup2", []string{"nsdelegate"}, MountOptions{Data: "nsdelegate"}},
	}
	for _, tc := range cases {
		got, err := ParseMountOptions(tc.fstype, tc.options)
		if err != nil {
			t.Errorf("ParseMountOptions(%q, %q) error = %v", tc.fstype, tc.options, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseMountOptions(%q, %q) = %+v, want %+v", tc.fstype, tc.options, got, tc.want)
		}
	}
}

func TestParseMountOptionsErrors(t *testing.T) {
	cases := []struct {
		fstype  string
		options []string
		want    string
	}{
		{"tmpfs", []string{"nosuid", "foo"}, `unknown option "foo"`},
		{"proc", []string{"size=1m"}, `unknown option "size=1m" for proc`},
		{"bind", []string{"rbind", "size=1m"}, `unknown option "size=1m" for bind`},
		{"tmpfs", []string{"bind", "mode=755"}, `unknown option "mode=755" for bind`},
		{"sysfs", []string{"newinstance"}, `unknown option "newinstance"`},
		{"tmpfs", []string{"mode=rwx"}, `option "mode=rwx": mode must be an octal mode`},
		{"devpts", []string{"gid=tty"}, `option "gid=tty": gid must be a number`},
		{"proc", []string{""}, `empty option`},
		{"bind", []string{"bind", "idmap"}, `unsupported option "idmap": id-mapped mounts are not supported`},
		{"tmpfs", []string{"tmpcopyup"}, `unsupported option "tmpcopyup": copying the image's content into a tmpfs is not supported`},
		{"tmpfs", []string{"remount"}, `unsupported option "remount": a spec mount is always a new mount`},
	}
	for _, tc := range cases {
		_, err := ParseMountOptions(tc.fstype, tc.options)
		if got := fmt.Sprint(err); got != tc.want {
			t.Errorf("ParseMountOptions(%q, %q) error = %v, want %s", tc.fstype, tc.options, err, tc.want)
		}
	}
}

func TestSetattrOf(t *testing.T) {
	cases := []struct {
		name          string
		set, cleared  uintptr
		wantSet, want uint64
	}{
		{"nothing", 0, 0, 0, 0},
		{"ro nosuid", unix.MS_RDONLY | unix.MS_NOSUID, 0, unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID, 0},
		{"rw exec", 0, unix.MS_RDONLY | unix.MS_NOEXEC, 0, unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOEXEC},
		{"noatime", unix.MS_NOATIME, 0, unix.MOUNT_ATTR_NOATIME, unix.MOUNT_ATTR__ATIME},
		{"strictatime", unix.MS_STRICTATIME, 0, unix.MOUNT_ATTR_STRICTATIME, unix.MOUNT_ATTR__ATIME},
		{"relatime", unix.MS_RELATIME, 0, unix.MOUNT_ATTR_RELATIME, unix.MOUNT_ATTR__ATIME},
		{"atime", 0, unix.MS_NOATIME, unix.MOUNT_ATTR_RELATIME, unix.MOUNT_ATTR__ATIME},
		{"nodev nodiratime nosymfollow", unix.MS_NODEV | unix.MS_NODIRATIME | unix.MS_NOSYMFOLLOW, 0,
			unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NODIRATIME | unix.MOUNT_ATTR_NOSYMFOLLOW, 0},
	}
	for _, tc := range cases {
		gotSet, gotClr := setattrOf(tc.set, tc.cleared)
		if gotSet != tc.wantSet || gotClr != tc.want {
			t.Errorf("setattrOf(%s) = set %#x clear %#x, want set %#x clear %#x", tc.name, gotSet, gotClr, tc.wantSet, tc.want)
		}
	}
}

func TestStatfsFlagsAndAttr(t *testing.T) {
	if got, want := statfsFlags(unix.ST_RDONLY|unix.ST_NOSUID|unix.ST_NODEV|unix.ST_NOEXEC|unix.ST_RELATIME|stNoSymfollow),
		uintptr(unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC|unix.MS_RELATIME|unix.MS_NOSYMFOLLOW); got != want {
		t.Errorf("statfsFlags = %#x, want %#x", got, want)
	}
	if got, want := msOfAttr(unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOEXEC|unix.MOUNT_ATTR_NOATIME), uintptr(unix.MS_RDONLY|unix.MS_NOEXEC|unix.MS_NOATIME); got != want {
		t.Errorf("msOfAttr = %#x, want %#x", got, want)
	}
}
