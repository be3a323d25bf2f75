// Package golden checks bytes Eddy keeps on disk against checked-in
// fixtures: the upgrade contracts of its own formats. A renamed field, a
// changed default or a reordered key fails the test that owns the format.
// EDDY_UPDATE_GOLDEN=1 rewrites the fixtures, for a change made on
// purpose (and then reviewed in the diff).
package golden

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// Check compares got with the fixture at testdata/golden/name.
func Check(t testing.TB, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if os.Getenv("EDDY_UPDATE_GOLDEN") == "1" {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want := Read(t, name)
	if !bytes.Equal(got, want) {
		t.Errorf("%s changed: a stored format is an upgrade contract; if the change is meant, rerun with EDDY_UPDATE_GOLDEN=1 and say why in the commit.\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

// Read returns the fixture at testdata/golden/name.
func Read(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "golden", name))
	if err != nil {
		t.Fatalf("golden fixture: %v (EDDY_UPDATE_GOLDEN=1 writes it)", err)
	}
	return b
}
