package testregistry

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// Layer media types.
const (
	DockerLayerGzip = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	OCILayer        = "application/vnd.oci.image.layer.v1.tar"
	OCILayerGzip    = "application/vnd.oci.image.layer.v1.tar+gzip"
	OCILayerZstd    = "application/vnd.oci.image.layer.v1.tar+zstd"
	DockerManifest  = "application/vnd.docker.distribution.manifest.v2+json"
	DockerList      = "application/vnd.docker.distribution.manifest.list.v2+json"
	OCIManifest     = "application/vnd.oci.image.manifest.v1+json"
	OCIIndex        = "application/vnd.oci.image.index.v1+json"
	DockerConfig    = "application/vnd.docker.container.image.v1+json"
	OCIConfig       = "application/vnd.oci.image.config.v1+json"
)

// Entry is one tar entry of a test layer.
type Entry struct {
	Name     string
	Type     byte // tar.TypeReg when 0
	Body     string
	Mode     int64 // 0644 (files) / 0755 (dirs) when 0
	Linkname string
	Xattrs   map[string]string
	UID, GID int
}

// epoch is the mtime of every test entry, so layers are reproducible.
var epoch = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

// Tar builds an uncompressed layer tar.
func Tar(entries ...Entry) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.Name, Typeflag: e.Type, Mode: e.Mode, Linkname: e.Linkname, Uid: e.UID, Gid: e.GID,
			ModTime: epoch, Format: tar.FormatPAX}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
			if h.Typeflag == tar.TypeDir {
				h.Mode = 0o755
			}
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.Body))
		}
		if len(e.Xattrs) > 0 {
			h.PAXRecords = map[string]string{}
			for k, v := range e.Xattrs {
				h.PAXRecords["SCHILY.xattr."+k] = v
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			panic(fmt.Sprintf("tar header %s: %v", e.Name, err))
		}
		if h.Typeflag == tar.TypeReg {
			io.WriteString(tw, e.Body)
		}
	}
	tw.Close()
	return buf.Bytes()
}

// Layer is a layer blob as a registry holds it.
type Layer struct {
	Blob      []byte
	MediaType string
	DiffID    string // sha256 of the uncompressed tar
}

// Digest is the blob's digest.
func (l Layer) Digest() string { return Digest(l.Blob) }

// Digest is "sha256:<hex>" of b.
func Digest(b []byte) string { return fmt.Sprintf("sha256:%x", sha256.Sum256(b)) }

// GzipLayer compresses a tar with gzip (Docker's media type).
func GzipLayer(tarball []byte) Layer {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(tarball)
	zw.Close()
	return Layer{Blob: buf.Bytes(), MediaType: DockerLayerGzip, DiffID: Digest(tarball)}
}

// ZstdLayer compresses a tar with zstd (OCI media type).
func ZstdLayer(tarball []byte) Layer {
	zw, _ := zstd.NewWriter(nil)
	return Layer{Blob: zw.EncodeAll(tarball, nil), MediaType: OCILayerZstd, DiffID: Digest(tarball)}
}

// PlainLayer is an uncompressed OCI layer.
func PlainLayer(tarball []byte) Layer {
	return Layer{Blob: tarball, MediaType: OCILayer, DiffID: Digest(tarball)}
}

// Image is a test image.
type Image struct {
	Layers []Layer
	// OS/Architecture/Variant default to linux/amd64.
	OS, Architecture, Variant string
	// ManifestMediaType: DockerManifest (default) or OCIManifest.
	ManifestMediaType string
	Cmd, Env          []string
	// DiffIDs overrides the config's rootfs.diff_ids (to build bad images).
	DiffIDs []string
}

// Pushed tells what Push stored.
type Pushed struct {
	Manifest, Config             []byte
	ManifestDigest, ConfigDigest string
	MediaType                    string
}

// Build renders the image's config and manifest.
func (img Image) Build() Pushed {
	if img.OS == "" {
		img.OS = "linux"
	}
	if img.Architecture == "" {
		img.Architecture = "amd64"
	}
	diffIDs := img.DiffIDs
	if diffIDs == nil {
		diffIDs = []string{}
		for _, l := range img.Layers {
			diffIDs = append(diffIDs, l.DiffID)
		}
	}
	var history []map[string]any
	for i := range img.Layers {
		history = append(history, map[string]any{"created": epoch, "created_by": fmt.Sprintf("test layer %d", i)})
	}
	cfg := map[string]any{
		"architecture": img.Architecture, "os": img.OS, "created": epoch,
		"config":  map[string]any{"Cmd": img.Cmd, "Env": img.Env},
		"rootfs":  map[string]any{"type": "layers", "diff_ids": diffIDs},
		"history": history,
	}
	if img.Variant != "" {
		cfg["variant"] = img.Variant
	}
	config, _ := json.Marshal(cfg)
	mt := img.ManifestMediaType
	if mt == "" {
		mt = DockerManifest
	}
	cfgMT := DockerConfig
	if mt == OCIManifest {
		cfgMT = OCIConfig
	}
	var layers []map[string]any
	for _, l := range img.Layers {
		layers = append(layers, map[string]any{"mediaType": l.MediaType, "size": len(l.Blob), "digest": l.Digest()})
	}
	manifest, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": mt,
		"config": map[string]any{"mediaType": cfgMT, "size": len(config), "digest": Digest(config)},
		"layers": layers,
	})
	return Pushed{Manifest: manifest, Config: config, ManifestDigest: Digest(manifest), ConfigDigest: Digest(config), MediaType: mt}
}

// Push uploads the image's blobs and its manifest as repo:tag.
func (s *Server) Push(t testing.TB, repo, tag string, img Image) Pushed {
	t.Helper()
	p := img.Build()
	for _, l := range img.Layers {
		s.PutBlob(t, repo, l.Blob)
	}
	s.PutBlob(t, repo, p.Config)
	s.PutManifest(t, repo, tag, p.MediaType, p.Manifest)
	return p
}

// PushIndex uploads the images and an index of them as repo:tag; it returns
// the index digest and the images as pushed.
func (s *Server) PushIndex(t testing.TB, repo, tag, mediaType string, imgs ...Image) (string, []Pushed) {
	t.Helper()
	var manifests []map[string]any
	var pushed []Pushed
	for _, img := range imgs {
		if img.OS == "" {
			img.OS = "linux"
		}
		if img.Architecture == "" {
			img.Architecture = "amd64"
		}
		p := s.Push(t, repo, "", img)
		plat := map[string]any{"os": img.OS, "architecture": img.Architecture}
		if img.Variant != "" {
			plat["variant"] = img.Variant
		}
		manifests = append(manifests, map[string]any{"mediaType": p.MediaType, "size": len(p.Manifest), "digest": p.ManifestDigest, "platform": plat})
		pushed = append(pushed, p)
	}
	index, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": mediaType, "manifests": manifests})
	s.PutManifest(t, repo, tag, mediaType, index)
	return Digest(index), pushed
}

func (s *Server) do(t testing.TB, req *http.Request) *http.Response {
	t.Helper()
	switch s.opts.Auth {
	case Basic:
		req.SetBasicAuth(s.opts.Username, s.opts.Password)
	case Bearer:
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	return resp
}

// PutBlob uploads b (monolithic upload) and returns its digest.
func (s *Server) PutBlob(t testing.TB, repo string, b []byte) string {
	t.Helper()
	dgst := Digest(b)
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/v2/"+repo+"/blobs/uploads/", nil)
	resp := s.do(t, req)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("start upload to %s: %s", repo, resp.Status)
	}
	loc := resp.Header.Get("Location")
	if strings.HasPrefix(loc, "/") {
		loc = s.URL + loc
	}
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	req, _ = http.NewRequest(http.MethodPut, loc+sep+"digest="+dgst, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/octet-stream")
	resp = s.do(t, req)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload blob %s to %s: %s %s", dgst, repo, resp.Status, body)
	}
	return dgst
}

// PutManifest stores a manifest under ref (a tag; "" stores it by digest only).
func (s *Server) PutManifest(t testing.TB, repo, ref, mediaType string, b []byte) {
	t.Helper()
	if ref == "" {
		ref = Digest(b)
	}
	req, _ := http.NewRequest(http.MethodPut, s.URL+"/v2/"+repo+"/manifests/"+ref, bytes.NewReader(b))
	req.Header.Set("Content-Type", mediaType)
	resp := s.do(t, req)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("put manifest %s:%s: %s %s", repo, ref, resp.Status, body)
	}
}
