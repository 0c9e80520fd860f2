package runtime

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadSpecErrors: a bad config gets encoding/json's error, as before.
func TestLoadSpecErrors(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"process":{"user":{"uid":"x"}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err := loadSpec(dir)
	if err == nil || !strings.Contains(err.Error(), "process.user.uid") {
		t.Errorf("loadSpec(bad uid) = %v, want an error naming process.user.uid", err)
	}
}
