package fsroot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// resolvers are the two implementations every case below runs against.
var resolvers = []struct {
	name string
	r    resolver
}{
	{"openat2", resolver{walk: false}},
	{"walk", resolver{walk: true}},
}

// hostile builds, in a fresh temp dir, a root full of escape attempts next to
// host files that must never be reached:
//
//	<tmp>/secret                      host file outside the root
//	<tmp>/root/etc/passwd             "inside"
//	<tmp>/root/dir/sub/
//	<tmp>/root/a         -> ../../..
//	<tmp>/root/abs       -> /etc
//	<tmp>/root/dir/up    -> ../../../..
//	<tmp>/root/hostabs   -> <tmp>       (absolute host path of the parent)
//	<tmp>/root/loop1     -> loop2,  loop2 -> loop1,  self -> self
//	<tmp>/root/chainN    -> chainN-1 ... chain0 -> etc   (N = 0..45)
//	<tmp>/root/fdlink    -> /proc/self/fd/0
//	<tmp>/root/rootlink  -> /proc/self/root
//	<tmp>/root/dangling  -> /nowhere/deeper
//	<tmp>/root/file      regular file
func hostile(t *testing.T) (tmp string, root *os.File) {
	t.Helper()
	tmp = t.TempDir()
	rootDir := filepath.Join(tmp, "root")
	mustMkdir(t, filepath.Join(rootDir, "etc"))
	mustMkdir(t, filepath.Join(rootDir, "dir", "sub"))
	mustWrite(t, filepath.Join(tmp, "secret"), "host")
	mustWrite(t, filepath.Join(rootDir, "etc", "passwd"), "inside")
	mustWrite(t, filepath.Join(rootDir, "file"), "file")
	links := map[string]string{
		"a":        "../../..",
		"abs":      "/etc",
		"dir/up":   "../../../..",
		"hostabs":  tmp,
		"loop1":    "loop2",
		"loop2":    "loop1",
		"self":     "self",
		"fdlink":   "/proc/self/fd/0",
		"rootlink": "/proc/self/root",
		"dangling": "/nowhere/deeper",
		"chain0":   "etc",
	}
	for i := 1; i <= 45; i++ {
		links["chain"+strconv.Itoa(i)] = "chain" + strconv.Itoa(i-1)
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(rootDir, name)); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.OpenFile(rootDir, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return tmp, f
}

func mustMkdir(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

func mustWrite(t *testing.T, p, data string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// sameFile reports whether f is the file at host path want.
func sameFile(t *testing.T, f *os.File, want string) bool {
	t.Helper()
	var a, b unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &a); err != nil {
		t.Fatal(err)
	}
	if err := unix.Lstat(want, &b); err != nil {
		return false
	}
	return a.Dev == b.Dev && a.Ino == b.Ino
}

func TestOpenStaysInRoot(t *testing.T) {
	cases := []struct {
		path string
		// want is the path below the root that must be opened, or "" when
		// wantErr is expected.
		want    string
		wantErr error
	}{
		{path: "/etc/passwd", want: "etc/passwd"},
		{path: "etc/passwd", want: "etc/passwd"},
		{path: "../../../etc/passwd", want: "etc/passwd"},
		{path: "/../../../../etc/passwd", want: "etc/passwd"},
		{path: "a/etc/passwd", want: "etc/passwd"},
		{path: "a/a/a/etc/passwd", want: "etc/passwd"},
		{path: "abs/passwd", want: "etc/passwd"},
		{path: "dir/up/etc/passwd", want: "etc/passwd"},
		{path: "dir/sub/../../etc/passwd", want: "etc/passwd"},
		{path: "dir/up/../../secret", wantErr: unix.ENOENT},
		{path: "a/secret", wantErr: unix.ENOENT},
		{path: "hostabs/secret", wantErr: unix.ENOENT},
		{path: "hostabs/root/etc/passwd", wantErr: unix.ENOENT},
		{path: "loop1", wantErr: unix.ELOOP},
		{path: "self/x", wantErr: unix.ELOOP},
		{path: "chain30/passwd", want: "etc/passwd"},
		{path: "chain45/passwd", wantErr: unix.ELOOP},
		{path: "fdlink", wantErr: unix.ENOENT},
		{path: "rootlink/etc/passwd", wantErr: unix.ENOENT},
		{path: "dangling", wantErr: unix.ENOENT},
		{path: "file/x", wantErr: unix.ENOTDIR},
		{path: "", want: "."},
		{path: "/", want: "."},
		{path: "..", want: "."},
		{path: "a", want: "."},
	}
	for _, impl := range resolvers {
		for _, tc := range cases {
			t.Run(impl.name+"/"+tc.path, func(t *testing.T) {
				tmp, root := hostile(t)
				f, err := impl.r.open(root, tc.path, unix.O_PATH)
				if tc.wantErr != nil {
					if err == nil {
						p, _ := Path(f)
						f.Close()
						t.Fatalf("open(%q) = %s, want error %v", tc.path, p, tc.wantErr)
					}
					if !errors.Is(err, tc.wantErr) {
						t.Fatalf("open(%q) error = %v, want %v", tc.path, err, tc.wantErr)
					}
					return
				}
				if err != nil {
					t.Fatalf("open(%q) error = %v, want %s", tc.path, err, tc.want)
				}
				defer f.Close()
				if !sameFile(t, f, filepath.Join(tmp, "root", tc.want)) {
					p, _ := Path(f)
					t.Fatalf("open(%q) = %s, want %s in the root", tc.path, p, tc.want)
				}
			})
		}
	}
}

func TestOpenFlags(t *testing.T) {
	for _, impl := range resolvers {
		t.Run(impl.name, func(t *testing.T) {
			tmp, root := hostile(t)

			// A plain read-only open reads the file inside the root.
			f, err := impl.r.open(root, "a/abs/passwd", unix.O_RDONLY)
			if err != nil {
				t.Fatalf("open read-only: %v", err)
			}
			buf := make([]byte, 16)
			n, _ := f.Read(buf)
			f.Close()
			if got := string(buf[:n]); got != "inside" {
				t.Errorf("read a/abs/passwd = %q, want %q", got, "inside")
			}

			// O_NOFOLLOW|O_PATH returns a trailing symlink itself.
			f, err = impl.r.open(root, "abs", unix.O_PATH|unix.O_NOFOLLOW)
			if err != nil {
				t.Fatalf("open O_NOFOLLOW: %v", err)
			}
			if !sameFile(t, f, filepath.Join(tmp, "root", "abs")) {
				t.Errorf("open(abs, O_NOFOLLOW) is not the symlink")
			}
			f.Close()

			// O_DIRECTORY on a file fails.
			if _, err := impl.r.open(root, "file", unix.O_PATH|unix.O_DIRECTORY); !errors.Is(err, unix.ENOTDIR) {
				t.Errorf("open(file, O_DIRECTORY) error = %v, want ENOTDIR", err)
			}
			// O_CREAT is refused.
			if _, err := impl.r.open(root, "new", unix.O_CREAT|unix.O_WRONLY); !errors.Is(err, unix.EINVAL) {
				t.Errorf("open(new, O_CREAT) error = %v, want EINVAL", err)
			}
		})
	}
}

// TestMagicLinksRefused resolves through real procfs magic links, with /proc
// (and /) as the root: the kernel resolver and the walk must both refuse them.
func TestMagicLinksRefused(t *testing.T) {
	probe, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	fd := strconv.Itoa(int(probe.Fd()))
	cases := []struct {
		root, path string
	}{
		{"/proc", "self/fd/" + fd},
		{"/proc", "thread-self/fd/" + fd},
		{"/proc", "self/exe"},
		{"/proc", "self/cwd/x"},
		{"/", "proc/self/root/etc/passwd"},
		{"/", "proc/self/fd/" + fd},
	}
	for _, impl := range resolvers {
		for _, tc := range cases {
			t.Run(fmt.Sprintf("%s/%s/%s", impl.name, tc.root, tc.path), func(t *testing.T) {
				root, err := os.OpenFile(tc.root, unix.O_PATH|unix.O_DIRECTORY, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer root.Close()
				f, err := impl.r.open(root, tc.path, unix.O_PATH)
				if err == nil {
					p, _ := Path(f)
					f.Close()
					t.Fatalf("open(%s, %q) = %s, want ELOOP", tc.root, tc.path, p)
				}
				if !errors.Is(err, unix.ELOOP) {
					t.Fatalf("open(%s, %q) error = %v, want ELOOP", tc.root, tc.path, err)
				}
			})
		}
	}
	// Ordinary procfs symlinks (/proc/self) still resolve.
	for _, impl := range resolvers {
		root, err := os.OpenFile("/proc", unix.O_PATH|unix.O_DIRECTORY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f, err := impl.r.open(root, "self/status", unix.O_RDONLY)
		root.Close()
		if err != nil {
			t.Errorf("%s: open(/proc, self/status) error = %v, want success", impl.name, err)
			continue
		}
		f.Close()
	}
}

func TestMkdirAllStaysInRoot(t *testing.T) {
	cases := []struct {
		path string
		// want is the directory below the root that must exist afterwards.
		want    string
		wantErr error
	}{
		{path: "/new/dir", want: "new/dir"},
		{path: "a/new/dir", want: "new/dir"},
		{path: "../../x/y", want: "x/y"},
		{path: "abs/newdir", want: "etc/newdir"},
		{path: "dir/up/up2", want: "up2"},
		// hostabs points at the host temp dir, which does not exist inside
		// the root: a dangling link, so nothing is created anywhere.
		{path: "hostabs/made", wantErr: unix.ENOENT},
		{path: "etc", want: "etc"},
		{path: "/", want: "."},
		{path: "dangling/x", wantErr: unix.ENOENT},
		{path: "file/x", wantErr: unix.ENOTDIR},
		{path: "file", wantErr: unix.ENOTDIR},
		{path: "loop1/x", wantErr: unix.ELOOP},
	}
	for _, impl := range resolvers {
		for _, tc := range cases {
			t.Run(impl.name+"/"+tc.path, func(t *testing.T) {
				tmp, root := hostile(t)
				want := tc.want
				before := listTree(t, tmp)
				f, err := impl.r.mkdirAll(root, tc.path, 0o755)
				if tc.wantErr != nil {
					if err == nil {
						f.Close()
						t.Fatalf("MkdirAll(%q) succeeded, want error %v", tc.path, tc.wantErr)
					}
					if !errors.Is(err, tc.wantErr) {
						t.Fatalf("MkdirAll(%q) error = %v, want %v", tc.path, err, tc.wantErr)
					}
					if after := listTree(t, tmp); after != before {
						t.Fatalf("MkdirAll(%q) failed but changed the tree:\n%s\nwas:\n%s", tc.path, after, before)
					}
					return
				}
				if err != nil {
					t.Fatalf("MkdirAll(%q) error = %v", tc.path, err)
				}
				defer f.Close()
				if !sameFile(t, f, filepath.Join(tmp, "root", want)) {
					p, _ := Path(f)
					t.Fatalf("MkdirAll(%q) = %s, want %s in the root", tc.path, p, want)
				}
				assertNothingOutside(t, tmp)
			})
		}
	}
}

func TestMkFile(t *testing.T) {
	cases := []struct {
		path    string
		want    string
		wantErr error
	}{
		{path: "/newfile", want: "newfile"},
		{path: "a/deep/newfile", want: "deep/newfile"},
		{path: "abs/passwd", want: "etc/passwd"},
		{path: "hostabs/secret", wantErr: unix.ENOENT},
		{path: "dir", wantErr: unix.EISDIR},
		{path: "/", wantErr: unix.EEXIST},
		{path: "dangling", wantErr: unix.ENOENT},
	}
	for _, impl := range resolvers {
		for _, tc := range cases {
			t.Run(impl.name+"/"+tc.path, func(t *testing.T) {
				tmp, root := hostile(t)
				f, err := impl.r.mkFile(root, tc.path, 0o644)
				if tc.wantErr != nil {
					if err == nil {
						f.Close()
						t.Fatalf("MkFile(%q) succeeded, want error %v", tc.path, tc.wantErr)
					}
					if !errors.Is(err, tc.wantErr) {
						t.Fatalf("MkFile(%q) error = %v, want %v", tc.path, err, tc.wantErr)
					}
					return
				}
				if err != nil {
					t.Fatalf("MkFile(%q) error = %v", tc.path, err)
				}
				defer f.Close()
				want := tc.want
				if !sameFile(t, f, filepath.Join(tmp, "root", want)) {
					p, _ := Path(f)
					t.Fatalf("MkFile(%q) = %s, want %s in the root", tc.path, p, want)
				}
				if data, _ := os.ReadFile(filepath.Join(tmp, "secret")); string(data) != "host" {
					t.Fatalf("host file changed: %q", data)
				}
				assertNothingOutside(t, tmp)
			})
		}
	}
}

func TestMknodAndSymlink(t *testing.T) {
	cases := []struct {
		path    string
		want    string
		wantErr error
	}{
		{path: "/dev/fifo", want: "dev/fifo"},
		{path: "a/fifo", want: "fifo"},
		{path: "hostabs/fifo", wantErr: unix.ENOENT},
		{path: "abs/passwd", wantErr: unix.EEXIST},
		{path: "/", wantErr: unix.EEXIST},
		{path: "file/x", wantErr: unix.ENOTDIR},
	}
	for _, impl := range resolvers {
		for _, tc := range cases {
			for _, kind := range []string{"mknod", "symlink"} {
				t.Run(impl.name+"/"+kind+"/"+tc.path, func(t *testing.T) {
					tmp, root := hostile(t)
					var err error
					if kind == "mknod" {
						err = impl.r.mknod(root, tc.path, unix.S_IFIFO|0o600, 0)
					} else {
						err = impl.r.symlink(root, "/etc/passwd", tc.path)
					}
					if tc.wantErr != nil {
						if !errors.Is(err, tc.wantErr) {
							t.Fatalf("%s(%q) error = %v, want %v", kind, tc.path, err, tc.wantErr)
						}
						return
					}
					if err != nil {
						t.Fatalf("%s(%q) error = %v", kind, tc.path, err)
					}
					want := tc.want
					fi, err := os.Lstat(filepath.Join(tmp, "root", want))
					if err != nil {
						t.Fatalf("%s(%q): %s not created: %v", kind, tc.path, want, err)
					}
					wantMode := os.ModeNamedPipe
					if kind == "symlink" {
						wantMode = os.ModeSymlink
					}
					if fi.Mode().Type() != wantMode {
						t.Fatalf("%s(%q) made %v, want %v", kind, tc.path, fi.Mode().Type(), wantMode)
					}
					assertNothingOutside(t, tmp)
				})
			}
		}
	}
}

// listTree describes everything under dir (names and types), for before/after
// comparisons.
func listTree(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %v\n", strings.TrimPrefix(p, dir), fi.Mode().Type())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// assertNothingOutside checks that the temp dir holds only the root and the
// host file, i.e. nothing was created next to the root.
func assertNothingOutside(t *testing.T, tmp string) {
	t.Helper()
	entries, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if got := strings.Join(names, ","); got != "root,secret" {
		t.Fatalf("entries next to the root = %s, want root,secret", got)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(tmp), "new")); err == nil {
		t.Fatalf("something was created above the temp dir")
	}
}
