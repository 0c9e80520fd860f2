package image

import (
	"context"
	"fmt"
	"path"
	"strings"
)

// Filter keeps the images that pass every filter of `images --filter`:
// dangling=true|false, reference=PATTERN (a glob on "name" or "name:tag",
// familiar form), before=IMAGE, since=IMAGE, label=KEY or label=KEY=VALUE.
// Filters of the same key are alternatives (OR), different keys all apply.
func (s *Store) Filter(ctx context.Context, images []Summary, filters []string) ([]Summary, error) {
	byKey := map[string][]string{}
	for _, f := range filters {
		k, v, ok := strings.Cut(f, "=")
		if !ok || v == "" {
			return nil, fmt.Errorf("%w: filter %q: want KEY=VALUE", ErrInvalid, f)
		}
		switch k {
		case "dangling":
			if v != "true" && v != "false" {
				return nil, fmt.Errorf("%w: filter %q: dangling is true or false", ErrInvalid, f)
			}
		case "reference", "label":
		case "before", "since":
			if _, err := s.Resolve(ctx, v); err != nil {
				return nil, fmt.Errorf("filter %q: %w", f, err)
			}
		default:
			return nil, fmt.Errorf("%w: filter %q: unknown key %q (want dangling, reference, before, since or label)", ErrInvalid, f, k)
		}
		byKey[k] = append(byKey[k], v)
	}
	var out []Summary
	for _, img := range images {
		ok, err := s.matches(ctx, img, byKey)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, img)
		}
	}
	return out, nil
}

func (s *Store) matches(ctx context.Context, img Summary, byKey map[string][]string) (bool, error) {
	for k, vals := range byKey {
		any := false
		for _, v := range vals {
			ok, err := s.match(ctx, img, k, v)
			if err != nil {
				return false, err
			}
			any = any || ok
		}
		if !any {
			return false, nil
		}
	}
	return true, nil
}

func (s *Store) match(ctx context.Context, img Summary, k, v string) (bool, error) {
	switch k {
	case "dangling":
		return (len(img.RepoTags) == 0) == (v == "true"), nil
	case "reference":
		for _, t := range img.RepoTags {
			name := t
			if i := strings.LastIndex(t, ":"); i > strings.LastIndex(t, "/") {
				name = t[:i]
			}
			if m, _ := path.Match(v, t); m {
				return true, nil
			}
			if m, _ := path.Match(v, name); m {
				return true, nil
			}
		}
		return false, nil
	case "before", "since":
		ref, err := s.Get(ctx, v)
		if err != nil {
			return false, err
		}
		if k == "before" {
			return img.Created.Before(ref.Created), nil
		}
		return img.Created.After(ref.Created), nil
	case "label":
		cfg, err := s.config(ctx, img.Image)
		if err != nil {
			return false, err
		}
		key, want, hasValue := strings.Cut(v, "=")
		got, ok := cfg.Config.Labels[key]
		return ok && (!hasValue || got == want), nil
	}
	return false, nil
}
