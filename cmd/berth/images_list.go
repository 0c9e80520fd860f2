package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berthproject/berth/internal/image"
	"github.com/berthproject/berth/internal/reference"
)

// listOptions are the flags of `images` / `image ls`.
type listOptions struct {
	all, quiet, digests, noTrunc bool
	filters                      []string
	format                       string
	// match is the optional REPOSITORY[:TAG] argument.
	match string
}

const (
	imagesTable        = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
	imagesTableDigests = "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
)

var imagesHeader = map[string]string{
	"ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST",
	"CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE", "Containers": "CONTAINERS",
	"VirtualSize": "SIZE", "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE",
}

// listImages prints the images of s as `docker images` does.
func listImages(ctx context.Context, s *image.Store, o listOptions, out io.Writer) error {
	filters := o.filters
	if o.match != "" {
		filters = append(filters[:len(filters):len(filters)], "reference="+o.match)
	}
	all, err := s.List(ctx)
	if err != nil {
		return err
	}
	shown, err := s.Filter(ctx, all, filters)
	if err != nil {
		return fmt.Errorf("--filter: %w", err)
	}
	shown = presentable(shown, all, referencePatterns(filters), o.all)
	fm := formatter{Format: o.format, Default: imagesTable, Header: imagesHeader}
	switch {
	case o.quiet && o.format == "":
		fm.Format = "{{.ID}}"
	case o.digests:
		fm.Default = imagesTableDigests
		if strings.HasPrefix(o.format, "table ") && !strings.Contains(o.format, "{{.Digest}}") {
			fm.Format += `\t{{.Digest}}`
		}
	}
	needDigest := o.digests || strings.Contains(fm.Format, "{{.Digest}}")
	return fm.Write(out, imageRows(shown, !o.noTrunc, needDigest, o.digests, time.Now()))
}

// referencePatterns are the values of the reference filters.
func referencePatterns(filters []string) []string {
	var out []string
	for _, f := range filters {
		if v, ok := strings.CutPrefix(f, "reference="); ok {
			out = append(out, v)
		}
	}
	return out
}

// presentable prepares filtered images for listing as Docker does: without
// all, untagged parents of other images (intermediate images) are hidden;
// with reference patterns, only the names they match are shown.
func presentable(shown, all []image.Summary, patterns []string, showAll bool) []image.Summary {
	parents := map[digest.Digest]bool{}
	for _, img := range all {
		if img.Parent != "" {
			parents[img.Parent] = true
		}
	}
	var out []image.Summary
	for _, img := range shown {
		if !showAll && len(img.RepoTags) == 0 && len(img.RepoDigests) == 0 && parents[img.ID] {
			continue
		}
		if len(patterns) > 0 {
			img.RepoTags = matchRefs(patterns, img.RepoTags)
			img.RepoDigests = matchRefs(patterns, img.RepoDigests)
		}
		out = append(out, img)
	}
	return out
}

// imageRows makes one row per repository and tag of each image, as Docker
// does: an image without names is one "<none>" row; a repository known only
// by digest is a row with tag "<none>".
func imageRows(imgs []image.Summary, trunc, needDigest, digestRows bool, now time.Time) []any {
	var rows []any
	for _, img := range imgs {
		base := map[string]string{
			"ID":           img.ID.String(),
			"CreatedSince": createdSince(img.Created, now),
			"CreatedAt":    img.Created.Local().Format("2006-01-02 15:04:05 -0700 MST"),
			"Size":         humanSize(img.Size, 3),
			"VirtualSize":  humanSize(img.Size, 3),
			"SharedSize":   "N/A",
			"UniqueSize":   "N/A",
			"Containers":   "N/A",
		}
		if trunc {
			base["ID"] = image.ShortID(img.ID)
		}
		if img.Containers >= 0 {
			base["Containers"] = strconv.Itoa(img.Containers)
		}
		add := func(repo, tag, dgst string) {
			r := map[string]string{"Repository": repo, "Tag": tag, "Digest": dgst}
			for k, v := range base {
				r[k] = v
			}
			rows = append(rows, r)
		}
		if len(img.RepoTags) == 0 && len(img.RepoDigests) == 0 {
			add("<none>", "<none>", "<none>")
			continue
		}
		tags := map[string][]string{}
		digests := map[string][]string{}
		var repos []string
		for _, t := range img.RepoTags {
			ref, err := reference.Parse(t)
			if err != nil || ref.Tag == "" {
				continue
			}
			n := ref.FamiliarName()
			if tags[n] == nil {
				repos = append(repos, n)
			}
			tags[n] = append(tags[n], ref.Tag)
		}
		for _, d := range img.RepoDigests {
			ref, err := reference.Parse(d)
			if err != nil || ref.Digest == "" {
				continue
			}
			n := ref.FamiliarName()
			if tags[n] == nil && digests[n] == nil {
				repos = append(repos, n)
			}
			digests[n] = append(digests[n], ref.Digest)
		}
		sort.Strings(repos)
		for _, repo := range repos {
			ds := digests[repo]
			if tags[repo] == nil {
				// known by digest only
				if digestRows {
					for _, d := range ds {
						add(repo, "<none>", d)
					}
				} else {
					add(repo, "<none>", "<none>")
				}
				continue
			}
			if !needDigest {
				ds = nil
			}
			for _, tag := range tags[repo] {
				if len(ds) == 0 {
					add(repo, tag, "<none>")
				}
				for _, d := range ds {
					add(repo, tag, d)
				}
			}
		}
	}
	return rows
}

// matchRefs keeps the familiar references that a pattern matches, either
// whole ("busybox:1.*") or by repository ("busybox", "*/app"), as Docker's
// reference filter does.
func matchRefs(patterns, refs []string) []string {
	var out []string
	for _, r := range refs {
		ref, err := reference.Parse(r)
		if err != nil {
			continue
		}
		for _, p := range patterns {
			if ok, _ := path.Match(p, ref.Familiar()); ok {
				out = append(out, r)
				break
			}
			if ok, _ := path.Match(p, ref.FamiliarName()); ok {
				out = append(out, r)
				break
			}
		}
	}
	return out
}

// inspectOptions are the flags of `image inspect`.
type inspectOptions struct {
	format string
}

// inspectImages prints the images as Docker's JSON array, or each through
// the -f template. Images that exist are printed even when others do not;
// the missing ones are reported and make the command fail.
func inspectImages(ctx context.Context, s *image.Store, names []string, o inspectOptions, out, errOut io.Writer) error {
	var tmpl *template.Template
	if o.format != "" && o.format != "json" {
		var err error
		f := strings.NewReplacer(`\t`, "\t", `\n`, "\n").Replace(o.format)
		if tmpl, err = template.New("").Funcs(templateFuncs).Parse(f); err != nil {
			return fmt.Errorf("--format %q: template parsing error: %w", o.format, err)
		}
	}
	found := []any{}
	var failed []error
	for _, n := range names {
		in, err := s.Inspect(ctx, n)
		if err != nil {
			failed = append(failed, noSuchImage(n, err))
			continue
		}
		found = append(found, in)
	}
	if tmpl != nil {
		for _, v := range found {
			if err := executeInspect(out, tmpl, v); err != nil {
				return fmt.Errorf("--format %q: %w", o.format, err)
			}
			fmt.Fprintln(out)
		}
	} else {
		enc := json.NewEncoder(out)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "    ")
		if err := enc.Encode(found); err != nil {
			return err
		}
	}
	return reportAll(errOut, failed)
}

// executeInspect runs an inspect --format template on v as Docker's CLI
// does: on the typed object first (numbers print as integers, an image's
// absent .Config.Entrypoint as []), and if that fails (.Id is a JSON name)
// on its JSON, numbers kept as written and a missing key an error.
func executeInspect(w io.Writer, tmpl *template.Template, v any) error {
	var buf bytes.Buffer
	if tmpl.Execute(&buf, v) == nil {
		_, err := buf.WriteTo(w)
		return err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var raw any
	if err := dec.Decode(&raw); err != nil {
		return err
	}
	strict, err := tmpl.Clone()
	if err != nil {
		return err
	}
	buf.Reset()
	if err := strict.Option("missingkey=error").Execute(&buf, raw); err != nil {
		return err
	}
	_, err = buf.WriteTo(w)
	return err
}

// historyOptions are the flags of `history`.
type historyOptions struct {
	noTrunc, quiet bool
	human          bool
	format         string
}

const historyTable = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"

var historyHeader = map[string]string{
	"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "CreatedBy": "CREATED BY",
	"Size": "SIZE", "Comment": "COMMENT",
}

// showHistory prints the image's history, newest first.
func showHistory(ctx context.Context, s *image.Store, name string, o historyOptions, out io.Writer) error {
	hist, err := s.History(ctx, name)
	if err != nil {
		return noSuchImage(name, err)
	}
	fm := formatter{Format: o.format, Default: historyTable, Header: historyHeader}
	if o.quiet && o.format == "" {
		fm.Format = "{{.ID}}"
	}
	return fm.Write(out, historyRows(hist, !o.noTrunc, o.human, time.Now()))
}

func historyRows(hist []image.HistoryEntry, trunc, human bool, now time.Time) []any {
	var rows []any
	for _, h := range hist {
		id := h.ID
		if trunc && strings.HasPrefix(id, "sha256:") {
			id = image.ShortID(digest.Digest(id))
		}
		createdBy := strings.ReplaceAll(h.CreatedBy, "\t", " ")
		if trunc {
			createdBy = ellipsis(createdBy, 45)
		}
		r := map[string]string{
			"ID": id, "CreatedBy": createdBy, "Comment": h.Comment,
			"CreatedSince": createdSince(h.Created, now),
			"CreatedAt":    h.Created.Format(time.RFC3339),
			"Size":         humanSize(h.Size, 3),
		}
		if !human {
			r["CreatedSince"] = r["CreatedAt"]
			r["Size"] = strconv.FormatInt(h.Size, 10)
		}
		rows = append(rows, r)
	}
	return rows
}
