package s3

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"sync"

	"github.com/eddy-cdc/eddy/connect"
)

// budget is the memory the sink's held files may take together; past it,
// a file's further bytes go to a temporary file.
type budget struct {
	mu         sync.Mutex
	used, most int64
}

func (b *budget) take(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.most {
		return false
	}
	b.used += n
	return true
}

func (b *budget) give(n int64) {
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
}

// spool holds one file's bytes until it is uploaded: in memory chunks
// while the budget allows, then in an unlinked temporary file. It hashes
// what it is given, and is read back with ReadAt (by several uploads of
// parts at once).
type spool struct {
	b      *budget
	dir    string
	chunks [][]byte // full but the last
	mem    int64    // bytes in chunks
	held   int64    // budget taken (the chunks' capacity)
	f      *os.File // the bytes after mem, once spilled
	fsize  int64
	sum    hash.Hash
}

const (
	firstChunk = 4 << 10
	lastChunk  = 1 << 20
)

func newSpool(b *budget, dir string) *spool { return &spool{b: b, dir: dir, sum: sha256.New()} }

func (s *spool) Write(p []byte) (int, error) {
	s.sum.Write(p)
	n := len(p)
	for len(p) > 0 && s.f == nil {
		if len(s.chunks) > 0 {
			c := s.chunks[len(s.chunks)-1]
			if room := cap(c) - len(c); room > 0 {
				k := min(room, len(p))
				s.chunks[len(s.chunks)-1] = append(c, p[:k]...)
				s.mem += int64(k)
				p = p[k:]
				continue
			}
		}
		size := firstChunk
		if len(s.chunks) > 0 {
			size = min(2*cap(s.chunks[len(s.chunks)-1]), lastChunk)
		}
		if !s.b.take(int64(size)) {
			if err := s.spill(); err != nil {
				return n - len(p), err
			}
			break
		}
		s.held += int64(size)
		s.chunks = append(s.chunks, make([]byte, 0, size))
	}
	if len(p) > 0 {
		k, err := s.f.Write(p)
		s.fsize += int64(k)
		if err != nil {
			// The file is torn: the task stops and resumes from the
			// committed offsets, where the file began.
			return n - len(p) + k, connect.Permanent(fmt.Errorf("spill to %s: %w", s.f.Name(), err))
		}
	}
	return n, nil
}

func (s *spool) spill() error {
	f, err := os.CreateTemp(s.dir, "eddy-s3-*.spool")
	if err != nil {
		return connect.Permanent(fmt.Errorf("spill a file past the memory budget: %w", err))
	}
	os.Remove(f.Name()) // gone with the process, whatever happens
	s.f = f
	return nil
}

// Size is the number of bytes written.
func (s *spool) Size() int64 { return s.mem + s.fsize }

// Sum is the SHA-256 of the bytes written, in hex.
func (s *spool) Sum() string { return hex.EncodeToString(s.sum.Sum(nil)) }

// Checksum is the SHA-256 of what was written, as S3's
// x-amz-checksum-sha256 header spells it.
func (s *spool) Checksum() string { return base64.StdEncoding.EncodeToString(s.sum.Sum(nil)) }

// ReadAt reads the bytes at off, from memory then the temporary file.
func (s *spool) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	if off < s.mem {
		at := off
		for _, c := range s.chunks {
			if len(p) == 0 {
				break
			}
			if at >= int64(len(c)) {
				at -= int64(len(c))
				continue
			}
			k := copy(p, c[at:])
			n += k
			p = p[k:]
			at = 0
		}
		off = 0 // the file's first byte follows
	} else {
		off -= s.mem // into the file
	}
	if len(p) == 0 {
		return n, nil
	}
	if s.f == nil || off >= s.fsize {
		return n, io.EOF
	}
	k, err := s.f.ReadAt(p, off)
	return n + k, err
}

// release gives the memory back and drops the temporary file.
func (s *spool) release() {
	s.b.give(s.held)
	s.held, s.chunks, s.mem = 0, nil, 0
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
}
