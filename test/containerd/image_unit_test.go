package containerdtest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"flag"
	"io"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestImageArchive checks, without root, that the archive is an OCI image
// layout whose index, manifest, config and layer agree with each other and
// with the tree it was made from.
func TestImageArchive(t *testing.T) {
	root := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(root, "bin"), 0o755))
	must(t, os.Mkdir(filepath.Join(root, "tmp"), 0o755))
	must(t, os.Chmod(filepath.Join(root, "tmp"), os.ModeSticky|0o777))
	must(t, os.WriteFile(filepath.Join(root, "bin/busybox"), []byte("not really busybox"), 0o755))
	must(t, os.Symlink("busybox", filepath.Join(root, "bin/sh")))

	var archive bytes.Buffer
	must(t, writeImageArchive(&archive, root, "latest"))
	files := untar(t, archive.Bytes())

	if got := string(files["oci-layout"].data); got != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout = %s", got)
	}
	var idx index
	decode(t, files["index.json"].data, &idx)
	if len(idx.Manifests) != 1 || idx.Manifests[0].Annotations[annotationRefName] != "latest" || idx.Manifests[0].MediaType != mediaTypeManifest {
		t.Fatalf("index.json = %+v, want one manifest named latest", idx)
	}
	var m manifest
	manifestBlob := blob(t, files, idx.Manifests[0])
	decode(t, manifestBlob, &m)
	var cfg imageConfig
	decode(t, blob(t, files, m.Config), &cfg)
	if len(m.Layers) != 1 || m.Layers[0].MediaType != mediaTypeLayerGz {
		t.Fatalf("manifest layers = %+v, want one gzipped layer", m.Layers)
	}
	zr, err := gzip.NewReader(bytes.NewReader(blob(t, files, m.Layers[0])))
	must(t, err)
	layer, err := io.ReadAll(zr)
	must(t, err)
	if len(cfg.RootFS.DiffIDs) != 1 || cfg.RootFS.DiffIDs[0] != digest(layer) {
		t.Errorf("config diff_ids = %v, want [%s] (the uncompressed layer)", cfg.RootFS.DiffIDs, digest(layer))
	}

	entries := untar(t, layer)
	tests := []struct {
		name     string
		typeflag byte
		mode     int64
		link     string
		data     string
	}{
		{"bin/", tar.TypeDir, 0o755, "", ""},
		{"bin/busybox", tar.TypeReg, 0o755, "", "not really busybox"},
		{"bin/sh", tar.TypeSymlink, 0o777, "busybox", ""},
		{"tmp/", tar.TypeDir, 0o1777, "", ""},
	}
	if len(entries) != len(tests) {
		t.Errorf("layer has %d entries, want %d: %v", len(entries), len(tests), entries)
	}
	for _, tt := range tests {
		e, ok := entries[tt.name]
		switch {
		case !ok:
			t.Errorf("layer has no %s", tt.name)
		case e.hdr.Typeflag != tt.typeflag || e.hdr.Mode&0o7777 != tt.mode || e.hdr.Linkname != tt.link || string(e.data) != tt.data:
			t.Errorf("layer entry %s = type %c mode %o link %q data %q; want type %c mode %o link %q data %q",
				tt.name, e.hdr.Typeflag, e.hdr.Mode&0o7777, e.hdr.Linkname, e.data, tt.typeflag, tt.mode, tt.link, tt.data)
		}
	}
}

// TestConfigGolden pins the daemon's config.toml.
func TestConfigGolden(t *testing.T) {
	got, err := renderConfig("/T")
	must(t, err)
	golden := filepath.Join("testdata", "config.toml.golden")
	if *update {
		must(t, os.WriteFile(golden, []byte(got), 0o644))
	}
	want, err := os.ReadFile(golden)
	must(t, err)
	if got != string(want) {
		t.Errorf("renderConfig(/T) =\n%s\nwant (%s):\n%s", got, golden, want)
	}
}

type tarEntry struct {
	hdr  *tar.Header
	data []byte
}

func untar(t *testing.T, data []byte) map[string]tarEntry {
	t.Helper()
	entries := map[string]tarEntry{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return entries
		}
		must(t, err)
		body, err := io.ReadAll(tr)
		must(t, err)
		entries[hdr.Name] = tarEntry{hdr, body}
	}
}

// blob returns the archive's blob of d and checks its digest and size.
func blob(t *testing.T, files map[string]tarEntry, d descriptor) []byte {
	t.Helper()
	e, ok := files[blobPath(d.Digest)]
	if !ok {
		t.Fatalf("no blob %s for %s", blobPath(d.Digest), d.MediaType)
	}
	if digest(e.data) != d.Digest || int64(len(e.data)) != d.Size {
		t.Fatalf("blob %s has digest %s and size %d, want %s and %d", blobPath(d.Digest), digest(e.data), len(e.data), d.Digest, d.Size)
	}
	return e.data
}

func decode(t *testing.T, data []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("decode %s: %v", data, err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
