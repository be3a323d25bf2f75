package log

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// FileOp names a kind of file operation the log performs, for WithFaults.
type FileOp string

// The file operations a FaultFunc sees.
const (
	OpCreate   FileOp = "create"   // create a segment, index, meta or temporary file
	OpWrite    FileOp = "write"    // write to a segment, an index or a file being replaced
	OpSync     FileOp = "sync"     // fsync or fdatasync of a file or a directory
	OpRename   FileOp = "rename"   // move a file or directory into place
	OpTruncate FileOp = "truncate" // cut a segment back to its last whole batch
)

// FaultFunc is consulted before each file operation the log performs, with
// the operation and the path of the file (or directory, for a directory
// sync). A non-nil error, such as syscall.EIO or syscall.ENOSPC, fails the
// operation as if the system call had returned it; a failed write has
// written half its bytes first, as a disk that fills up mid-write does.
type FaultFunc func(op FileOp, path string) error

// WithFaults installs fault injection into every file operation of the log:
// the seam of the disk-fault tests. Default: none.
func WithFaults(f FaultFunc) Option { return func(o *options) { o.disk = &disk{fault: f} } }

// disk performs the log's file operations that change what is stored,
// through the fault seam.
type disk struct {
	fault FaultFunc
}

func (d *disk) inject(op FileOp, path string) error {
	if d == nil || d.fault == nil {
		return nil
	}
	if err := d.fault(op, path); err != nil {
		return &os.PathError{Op: string(op), Path: path, Err: err}
	}
	return nil
}

// create opens path for writing, creating it (flag holds os.O_CREATE).
func (d *disk) create(path string, flag int) (*os.File, error) {
	if err := d.inject(OpCreate, path); err != nil {
		return nil, err
	}
	return os.OpenFile(path, flag, 0o644)
}

func (d *disk) writeAt(f *os.File, b []byte, off int64) error {
	if err := d.inject(OpWrite, f.Name()); err != nil {
		f.WriteAt(b[:len(b)/2], off)
		return err
	}
	_, err := f.WriteAt(b, off)
	return err
}

func (d *disk) write(f *os.File, b []byte) error {
	if err := d.inject(OpWrite, f.Name()); err != nil {
		f.Write(b[:len(b)/2])
		return err
	}
	_, err := f.Write(b)
	return err
}

// fsync flushes a file's data and metadata.
func (d *disk) fsync(f *os.File) error {
	if err := d.inject(OpSync, f.Name()); err != nil {
		return err
	}
	return f.Sync()
}

// fdatasync flushes a file's data and the metadata needed to read it back
// (its size), not its times: what an append needs.
func (d *disk) fdatasync(f *os.File) error {
	if err := d.inject(OpSync, f.Name()); err != nil {
		return err
	}
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			return err
		}
	}
}

func (d *disk) truncate(f *os.File, size int64) error {
	if err := d.inject(OpTruncate, f.Name()); err != nil {
		return err
	}
	return f.Truncate(size)
}

func (d *disk) rename(from, to string) error {
	if err := d.inject(OpRename, to); err != nil {
		return err
	}
	return os.Rename(from, to)
}

// syncDir makes the entries of dir (files created, renamed or removed)
// durable.
func (d *disk) syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	defer f.Close()
	if err := d.fsync(f); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

func (d *disk) syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	defer f.Close()
	if err := d.fsync(f); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return nil
}

// writeFileSync writes a file through a temporary name and renames it into
// place, so a crash leaves either the old or the new content.
func (d *disk) writeFileSync(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := d.create(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = d.write(f, b); err == nil {
		err = d.fsync(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = d.rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return d.syncDir(filepath.Dir(path))
}
