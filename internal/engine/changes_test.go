package engine

import (
	"archive/tar"
	"bytes"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/berthproject/berth/internal/archive"
)

// changes parses "A /path" lines.
func changes(lines ...string) []archive.Change {
	kinds := map[string]archive.ChangeKind{"A": archive.ChangeAdd, "C": archive.ChangeModify, "D": archive.ChangeDelete}
	out := []archive.Change{}
	for _, l := range lines {
		k, p, _ := strings.Cut(l, " ")
		out = append(out, archive.Change{Kind: kinds[k], Path: p})
	}
	return out
}

func TestWithoutEtcMounts(t *testing.T) {
	tests := []struct {
		in, want []string
	}{
		// only the mount points changed /etc
		{[]string{"A /added", "C /etc", "A /etc/hostname", "A /etc/hosts", "A /etc/resolv.conf"}, []string{"A /added"}},
		// an image without /etc
		{[]string{"A /etc", "A /etc/hosts"}, nil},
		// something else in /etc changed too
		{[]string{"C /etc", "A /etc/hosts", "C /etc/passwd"}, []string{"C /etc", "C /etc/passwd"}},
		// a deleted mount point file is the container's doing
		{[]string{"C /etc", "D /etc/hosts"}, []string{"C /etc", "D /etc/hosts"}},
		{[]string{"D /etc"}, []string{"D /etc"}},
		// an image without /dev, /proc and /sys: the runtime made the mount points
		{[]string{"A /added", "A /dev", "A /proc", "A /sys"}, []string{"A /added"}},
		{[]string{"A /dev", "A /dev/x", "A /devices", "A /proc", "A /sysx"}, []string{"A /dev", "A /dev/x", "A /devices", "A /sysx"}},
	}
	for _, tt := range tests {
		if got := withoutEtcMounts(changes(tt.in...)); !slices.Equal(got, changes(tt.want...)) {
			t.Errorf("withoutEtcMounts(%q) = %v, want %q", tt.in, got, tt.want)
		}
	}
}

func TestFilterEtcMounts(t *testing.T) {
	layer := func(names ...string) []byte {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		for _, n := range names {
			h := &tar.Header{Name: n, Mode: 0o644, Typeflag: tar.TypeReg}
			body := ""
			if strings.HasSuffix(n, "/") {
				h.Typeflag, h.Mode = tar.TypeDir, 0o755
			} else if !strings.HasPrefix(n, "etc/h") && !strings.HasPrefix(n, "etc/resolv") {
				body = "content of " + n
				h.Size = int64(len(body))
			}
			tw.WriteHeader(h)
			io.WriteString(tw, body)
		}
		tw.Close()
		return b.Bytes()
	}
	tests := []struct {
		in, want []string
	}{
		{[]string{"added", "etc/", "etc/hostname", "etc/hosts", "etc/resolv.conf"}, []string{"added"}},
		{[]string{"etc/", "etc/hosts", "etc/passwd", "z"}, []string{"etc/", "etc/passwd", "z"}},
		{[]string{"etc/", "etc/.wh.group", "etc/hosts"}, []string{"etc/", "etc/.wh.group"}},
		{[]string{"bin/", "bin/.wh.vi"}, []string{"bin/", "bin/.wh.vi"}},
		{[]string{"added", "dev/", "etc/", "etc/hosts", "proc/", "sys/"}, []string{"added"}},
		{[]string{"dev/", "dev/x", "devices/", "proc/", "sys/"}, []string{"dev/", "dev/x", "devices/"}},
	}
	for _, tt := range tests {
		var out bytes.Buffer
		if err := filterEtcMounts(bytes.NewReader(layer(tt.in...)), &out); err != nil {
			t.Fatalf("filterEtcMounts(%q): %v", tt.in, err)
		}
		var got []string
		tr := tar.NewReader(&out)
		for {
			h, err := tr.Next()
			if err != nil {
				break
			}
			b, _ := io.ReadAll(tr)
			if h.Typeflag == tar.TypeReg && h.Size > 0 && string(b) != "content of "+h.Name {
				t.Errorf("filterEtcMounts(%q): %s holds %q", tt.in, h.Name, b)
			}
			got = append(got, h.Name)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("filterEtcMounts(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
