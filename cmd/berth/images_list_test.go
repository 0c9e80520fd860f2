package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berthproject/berth/internal/image"
)

var listNow = time.Date(2026, 1, 2, 12, 0, 0, 0, time.UTC)

func testSummary(hex byte, tags, digests []string, parent digest.Digest) image.Summary {
	id := digest.Digest("sha256:" + strings.Repeat(string(hex), 64))
	return image.Summary{
		Image:    &image.Image{ID: id, Created: listNow.Add(-3 * time.Hour), Size: 4_260_000, Parent: parent},
		RepoTags: tags, RepoDigests: digests,
	}
}

// rowsText renders rows as "repo tag digest id" lines.
func rowsText(rows []any) string {
	var lines []string
	for _, r := range rows {
		m := r.(map[string]string)
		lines = append(lines, fmt.Sprintf("%s %s %s %s", m["Repository"], m["Tag"], m["Digest"], m["ID"]))
	}
	return strings.Join(lines, "\n")
}

func TestImageRows(t *testing.T) {
	dA := "sha256:" + strings.Repeat("d", 64)
	tests := []struct {
		name                          string
		img                           image.Summary
		trunc, needDigest, digestRows bool
		want                          string
	}{
		{name: "untagged image is one <none> row", img: testSummary('a', nil, nil, ""), trunc: true,
			want: "<none> <none> <none> aaaaaaaaaaaa"},
		{name: "a row per repository and tag, sorted by repository", img: testSummary('a', []string{"zz:1", "busybox:latest", "busybox:1.36"}, nil, ""), trunc: true,
			want: "busybox latest <none> aaaaaaaaaaaa\nbusybox 1.36 <none> aaaaaaaaaaaa\nzz 1 <none> aaaaaaaaaaaa"},
		{name: "digest hidden unless asked", img: testSummary('a', []string{"busybox:latest"}, []string{"busybox@" + dA}, ""), trunc: true,
			want: "busybox latest <none> aaaaaaaaaaaa"},
		{name: "digest of the tag's repository with --digests", img: testSummary('a', []string{"busybox:latest"}, []string{"busybox@" + dA}, ""), trunc: true, needDigest: true, digestRows: true,
			want: "busybox latest " + dA + " aaaaaaaaaaaa"},
		{name: "repository known by digest only", img: testSummary('a', nil, []string{"localhost:5000/x@" + dA}, ""), trunc: true,
			want: "localhost:5000/x <none> <none> aaaaaaaaaaaa"},
		{name: "repository known by digest only, --digests", img: testSummary('a', nil, []string{"localhost:5000/x@" + dA}, ""), trunc: true, needDigest: true, digestRows: true,
			want: "localhost:5000/x <none> " + dA + " aaaaaaaaaaaa"},
		{name: "--no-trunc shows the full ID", img: testSummary('b', []string{"x:y"}, nil, ""),
			want: "x y <none> sha256:" + strings.Repeat("b", 64)},
	}
	for _, tt := range tests {
		got := rowsText(imageRows([]image.Summary{tt.img}, tt.trunc, tt.needDigest, tt.digestRows, listNow))
		if got != tt.want {
			t.Errorf("%s: imageRows =\n%s\nwant\n%s", tt.name, got, tt.want)
		}
	}
	row := imageRows([]image.Summary{testSummary('a', []string{"x:y"}, nil, "")}, true, false, false, listNow)[0].(map[string]string)
	if row["Size"] != "4.26MB" || row["CreatedSince"] != "3 hours ago" {
		t.Errorf("row Size %q CreatedSince %q, want 4.26MB and 3 hours ago", row["Size"], row["CreatedSince"])
	}
}

func TestPresentable(t *testing.T) {
	parent := testSummary('p', nil, nil, "")
	child := testSummary('c', []string{"app:1", "other:2"}, nil, parent.ID)
	lone := testSummary('l', nil, nil, "")
	all := []image.Summary{parent, child, lone}
	ids := func(imgs []image.Summary) string {
		var s []string
		for _, img := range imgs {
			s = append(s, string(img.ID.Encoded()[0])+fmt.Sprint(img.RepoTags))
		}
		return strings.Join(s, " ")
	}
	tests := []struct {
		name     string
		patterns []string
		showAll  bool
		want     string
	}{
		{name: "intermediate parent hidden", want: "c[app:1 other:2] l[]"},
		{name: "-a shows it", showAll: true, want: "p[] c[app:1 other:2] l[]"},
		{name: "a reference pattern narrows the tags shown", patterns: []string{"app"}, want: "c[app:1] l[]"},
		{name: "patterns match name:tag globs too", patterns: []string{"oth*:2"}, want: "c[other:2] l[]"},
	}
	for _, tt := range tests {
		if got := ids(presentable(all, all, tt.patterns, tt.showAll)); got != tt.want {
			t.Errorf("%s: presentable = %s, want %s", tt.name, got, tt.want)
		}
	}
}

func TestReferencePatterns(t *testing.T) {
	got := referencePatterns([]string{"dangling=false", "reference=busybox*", "label=a", "reference=x:1"})
	if strings.Join(got, ",") != "busybox*,x:1" {
		t.Errorf("referencePatterns = %q, want [busybox* x:1]", got)
	}
}

func TestHistoryRows(t *testing.T) {
	long := "/bin/sh -c #(nop) \tCOPY file:0123456789abcdef0123456789abcdef in /"
	hist := []image.HistoryEntry{
		{ID: "sha256:" + strings.Repeat("e", 64), Created: listNow.Add(-time.Hour), CreatedBy: long, Size: 1_500_000, Comment: "c"},
		{ID: "<missing>", Created: listNow.Add(-48 * time.Hour), CreatedBy: "base", Size: 0},
	}
	tests := []struct {
		name         string
		trunc, human bool
		want         []map[string]string
	}{
		{name: "truncated and human", trunc: true, human: true, want: []map[string]string{
			{"ID": "eeeeeeeeeeee", "CreatedBy": "/bin/sh -c #(nop)  COPY file:0123456789abcde…", "Size": "1.5MB", "CreatedSince": "About an hour ago", "Comment": "c"},
			{"ID": "<missing>", "CreatedBy": "base", "Size": "0B", "CreatedSince": "2 days ago"},
		}},
		{name: "--no-trunc -H=false", want: []map[string]string{
			{"ID": "sha256:" + strings.Repeat("e", 64), "CreatedBy": strings.ReplaceAll(long, "\t", " "), "Size": "1500000", "CreatedSince": "2026-01-02T11:00:00Z"},
			{"ID": "<missing>", "Size": "0", "CreatedSince": "2025-12-31T12:00:00Z"},
		}},
	}
	for _, tt := range tests {
		rows := historyRows(hist, tt.trunc, tt.human, listNow)
		for i, want := range tt.want {
			got := rows[i].(map[string]string)
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s: row %d %s = %q, want %q", tt.name, i, k, got[k], v)
				}
			}
		}
	}
}

func TestRegistryHost(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "docker.io"},
		{"https://index.docker.io/v1/", "docker.io"},
		{"localhost:5000", "localhost:5000"},
		{"http://127.0.0.1:5000/", "127.0.0.1:5000"},
		{"registry.example.com", "registry.example.com"},
	}
	for _, tt := range tests {
		if got := registryHost(tt.in); got != tt.want {
			t.Errorf("registryHost(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestDFImagesRow(t *testing.T) {
	tests := []struct {
		name string
		du   image.DiskUsage
		want string
	}{
		{name: "nothing in use: all reclaimable", du: image.DiskUsage{Images: 2, LayersSize: 3_000_000, BlobsSize: 1_000_000, Reclaimable: 3_000_000},
			want: "Images 2 0 4MB 4MB (100%)"},
		{name: "an image in use", du: image.DiskUsage{Images: 2, ActiveImages: 1, LayersSize: 3_000_000, BlobsSize: 1_000_000, Reclaimable: 1_000_000},
			want: "Images 2 1 4MB 1MB (25%)"},
		{name: "empty store", du: image.DiskUsage{}, want: "Images 0 0 0B 0B"},
	}
	for _, tt := range tests {
		r := dfImagesRow(&tt.du)
		got := strings.Join([]string{r["Type"], r["TotalCount"], r["Active"], r["Size"], r["Reclaimable"]}, " ")
		if got != tt.want {
			t.Errorf("%s: dfImagesRow = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestNoSuchImage(t *testing.T) {
	err := noSuchImage("foo", fmt.Errorf("image foo: %w", image.ErrNotFound))
	if err.Error() != "No such image: foo" {
		t.Errorf("noSuchImage = %q, want %q", err, "No such image: foo")
	}
	other := fmt.Errorf("disk on fire")
	if noSuchImage("foo", other) != other {
		t.Errorf("noSuchImage changed an error that is not a not-found")
	}
}
