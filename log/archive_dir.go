package log

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// DirStore is an ArchiveStore in a local directory (a mounted volume, or
// the tests of the archive's mechanism): each key a file, written
// through a temporary name, synced and renamed into place.
type DirStore struct {
	dir  string
	disk *disk
}

// NewDirStore returns a store in dir, creating it.
func NewDirStore(dir string) (*DirStore, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("archive directory %s: %w", dir, err)
	}
	return &DirStore{dir: dir, disk: &disk{}}, nil
}

func (d *DirStore) String() string { return "dir://" + d.dir }

func (d *DirStore) path(key string) (string, error) {
	if key == "" || strings.HasPrefix(key, "/") || strings.Contains(key, "..") {
		return "", fmt.Errorf("archive key %q: not a relative path", key)
	}
	return filepath.Join(d.dir, filepath.FromSlash(key)), nil
}

// Put writes the object and syncs it and its directory.
func (d *DirStore) Put(_ context.Context, key string, body io.ReaderAt, size int64, sum [sha256.Size]byte) error {
	path, err := d.path(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(f, h), io.NewSectionReader(body, 0, size))
	if err == nil && [sha256.Size]byte(h.Sum(nil)) != sum {
		err = errors.New("the bytes read do not match their checksum")
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("put %s: %w", key, err)
	}
	return d.disk.syncDir(filepath.Dir(path))
}

// Stat reads the whole object to report its SHA-256.
func (d *DirStore) Stat(_ context.Context, key string) (ObjectStat, error) {
	path, err := d.path(key)
	if err != nil {
		return ObjectStat{}, err
	}
	f, err := os.Open(path)
	if err != nil {
		return ObjectStat{}, fmt.Errorf("stat %s: %w", key, err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return ObjectStat{}, fmt.Errorf("stat %s: %w", key, err)
	}
	return ObjectStat{Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// ReadAt reads from the object's file.
func (d *DirStore) ReadAt(_ context.Context, key string, p []byte, off int64) (int, error) {
	path, err := d.path(key)
	if err != nil {
		return 0, err
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", key, err)
	}
	defer f.Close()
	n, err := f.ReadAt(p, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return n, fmt.Errorf("read %s: %w", key, err)
	}
	return n, err
}

// Delete removes the object's file.
func (d *DirStore) Delete(_ context.Context, key string) error {
	path, err := d.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}

// OpenRange streams n bytes of the object's file from off.
func (d *DirStore) OpenRange(_ context.Context, key string, off, n int64) (io.ReadCloser, error) {
	path, err := d.path(key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	return struct {
		io.Reader
		io.Closer
	}{io.NewSectionReader(f, off, n), f}, nil
}
