package testrootfs

import (
	"os"
	"path/filepath"
	"testing"
)

func TestBuildAndCopy(t *testing.T) {
	if _, err := os.Stat(DefaultBusybox); err != nil {
		t.Skipf("no busybox at %s (install busybox-static): %v", DefaultBusybox, err)
	}
	src := filepath.Join(t.TempDir(), "src")
	if err := Build(src, DefaultBusybox); err != nil {
		t.Fatalf("Build: %v", err)
	}
	dst := filepath.Join(t.TempDir(), "dst")
	if err := Copy(src, dst); err != nil {
		t.Fatalf("Copy: %v", err)
	}
	for _, root := range []string{src, dst} {
		tests := []struct {
			path string
			want func(os.FileInfo) bool
			desc string
		}{
			{"bin/busybox", func(fi os.FileInfo) bool { return fi.Mode().IsRegular() && fi.Mode().Perm() == 0o755 }, "regular file 0755"},
			{"bin/sh", func(fi os.FileInfo) bool { return fi.Mode()&os.ModeSymlink != 0 }, "symlink"},
			{"tmp", func(fi os.FileInfo) bool {
				return fi.IsDir() && fi.Mode()&os.ModeSticky != 0 && fi.Mode().Perm() == 0o777
			}, "dir 1777"},
			{"etc/passwd", func(fi os.FileInfo) bool { return fi.Mode().IsRegular() }, "regular file"},
			{"proc", func(fi os.FileInfo) bool { return fi.IsDir() }, "dir"},
		}
		for _, tt := range tests {
			fi, err := os.Lstat(filepath.Join(root, tt.path))
			if err != nil {
				t.Errorf("%s: %v", tt.path, err)
				continue
			}
			if !tt.want(fi) {
				t.Errorf("%s in %s: mode %v, want %s", tt.path, root, fi.Mode(), tt.desc)
			}
		}
		link, err := os.Readlink(filepath.Join(root, "bin/sh"))
		if err != nil || link != "busybox" {
			t.Errorf("Readlink(bin/sh) in %s = %q, %v, want busybox", root, link, err)
		}
	}
	applets, err := Applets(DefaultBusybox)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range applets {
		if _, err := os.Lstat(filepath.Join(dst, "bin", a)); err != nil {
			t.Errorf("applet %s missing from the copy: %v", a, err)
		}
	}
	passwd, err := os.ReadFile(filepath.Join(dst, "etc/passwd"))
	if err != nil || string(passwd) != passwdContent {
		t.Errorf("etc/passwd = %q, %v, want %q", passwd, err, passwdContent)
	}
}
