package log

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
)

// File name suffixes of a segment's parts. A segment is named by its base
// offset in 20 digits, as Kafka names them.
const (
	logSuffix       = ".log"
	indexSuffix     = ".index"
	timeIndexSuffix = ".timeindex"
	cleanedSuffix   = ".cleaned"
	indexEntrySize  = 8  // relative offset uint32, position uint32
	timeEntrySize   = 12 // timestamp int64, relative offset uint32
	maxSegmentBytes = 1<<31 - 1
)

func segmentName(base int64) string { return fmt.Sprintf("%020d", base) }

type indexEntry struct {
	rel uint32 // offset - base
	pos uint32 // file position of the batch that starts at base+rel
}

type timeEntry struct {
	ts  int64  // largest timestamp in the segment up to and including the batch
	rel uint32 // base offset of that batch, relative
}

// segment is one file of record batches with its sparse indexes. Batches are
// only ever appended at size by the partition's flusher; readers never look
// past size, so a reader and the flusher never touch the same bytes.
//
// Invariant: every byte below size is a sequence of complete batches whose
// CRCs held when they were written or recovered, with increasing offsets.
type segment struct {
	dir  string
	base int64
	f    *os.File
	disk *disk

	size atomic.Int64 // bytes of complete batches in f

	mu       sync.RWMutex // guards the index slices and the fields below
	index    []indexEntry
	times    []timeEntry
	idxBuf   []byte // index entries not yet written to the files
	timeBuf  []byte
	idxF     *os.File // append handles of the index files, opened on first use
	timeF    *os.File
	sinceIdx int64 // bytes appended since the last index entry
	maxTs    int64 // largest batch max timestamp
	next     int64 // offset after the last batch (meaningful for the active segment)
	rollTs   int64 // when the segment got its first batch (ms), -1 when empty: drives roll by age

	refs atomic.Int32 // 1 for the partition's list, +1 per reader
}

func (s *segment) path(suffix string) string {
	return filepath.Join(s.dir, segmentName(s.base)+suffix)
}

func (s *segment) acquire() { s.refs.Add(1) }

func (s *segment) release() {
	if s.refs.Add(-1) == 0 {
		s.f.Close()
		s.closeIndexFiles()
	}
}

func (s *segment) closeIndexFiles() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range []**os.File{&s.idxF, &s.timeF} {
		if *f != nil {
			(*f).Close()
			*f = nil
		}
	}
}

// createSegment makes a new, empty segment and syncs the directory so the
// file's existence survives a crash.
func createSegment(d *disk, dir string, base int64) (*segment, error) {
	s := &segment{dir: dir, base: base, disk: d, next: base, maxTs: -1, rollTs: -1}
	f, err := d.create(s.path(logSuffix), os.O_RDWR|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		return nil, fmt.Errorf("create segment %s: %w", segmentName(base), err)
	}
	s.f = f
	s.refs.Store(1)
	for _, suf := range []string{indexSuffix, timeIndexSuffix} {
		idx, err := d.create(s.path(suf), os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
		if err == nil {
			err = idx.Close()
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("create segment %s: %w", segmentName(base), err)
		}
	}
	if err := d.syncDir(dir); err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

// openSegment opens an existing segment. An active segment (the last one of
// a partition) is scanned from the start: a torn or corrupt tail is cut off
// and its indexes are rebuilt. A closed segment trusts its indexes when they
// are consistent with the file and rebuilds them when they are not.
func openSegment(d *disk, dir string, base int64, active bool, interval int64, logf func(string, ...any)) (*segment, error) {
	s := &segment{dir: dir, base: base, disk: d, next: base, maxTs: -1, rollTs: -1}
	f, err := os.OpenFile(s.path(logSuffix), os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("open segment %s: %w", segmentName(base), err)
	}
	s.f = f
	s.refs.Store(1)
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat segment %s: %w", segmentName(base), err)
	}
	fileSize := fi.Size()
	if !active {
		if reason := s.loadIndexes(fileSize); reason == "" {
			s.size.Store(fileSize)
			return s, nil
		} else {
			logf("rebuilding indexes of closed segment", "segment", s.path(logSuffix), "reason", reason)
		}
	}
	res, err := scanSegment(f, base, fileSize, interval, active)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("recover segment %s: %w", s.path(logSuffix), err)
	}
	if res.end < fileSize {
		logf("truncating torn or corrupt segment tail", "segment", s.path(logSuffix),
			"valid_bytes", res.end, "file_bytes", fileSize, "reason", res.reason)
		if err := d.truncate(f, res.end); err != nil {
			f.Close()
			return nil, fmt.Errorf("truncate segment %s to %d: %w", s.path(logSuffix), res.end, err)
		}
		if err := d.fsync(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("sync segment %s: %w", s.path(logSuffix), err)
		}
	}
	s.size.Store(res.end)
	s.index, s.times, s.sinceIdx = res.index, res.times, res.sinceIdx
	s.maxTs, s.next, s.rollTs = res.maxTs, res.next, res.firstTs
	if err := s.rewriteIndexes(active); err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

type scanResult struct {
	end      int64 // bytes of valid batches
	next     int64 // offset after the last valid batch
	maxTs    int64
	firstTs  int64
	index    []indexEntry
	times    []timeEntry
	sinceIdx int64
	reason   string // why the scan stopped before the end of the file
}

// scanSegment reads a segment's batches in order, verifying each, and stops
// at the first one that is torn, corrupt or out of order. Only an I/O error
// is returned as an error; corruption is reported in reason. With
// contiguous, each batch must start right after the one before: true of
// every segment appends wrote, and the only check on the base offset, which
// the CRC does not cover. A compacted segment may have gaps between batches.
func scanSegment(f io.ReaderAt, base, fileSize, interval int64, contiguous bool) (scanResult, error) {
	res := scanResult{next: base, maxTs: -1, firstTs: -1}
	buf := make([]byte, 4<<20)
	var bufStart, bufLen int64 // buf holds file bytes [bufStart, bufStart+bufLen)
	fill := func(pos, need int64) ([]byte, error) {
		if pos >= bufStart && pos+need <= bufStart+bufLen {
			return buf[pos-bufStart : pos-bufStart+need], nil
		}
		if need > int64(len(buf)) {
			buf = make([]byte, need)
		}
		n, err := f.ReadAt(buf, pos)
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read at %d: %w", pos, err)
		}
		bufStart, bufLen = pos, int64(n)
		if int64(n) < need {
			return nil, nil
		}
		return buf[:need], nil
	}
	pos := int64(0)
	for pos < fileSize {
		if fileSize-pos < BatchHeaderSize {
			res.reason = fmt.Sprintf("%d bytes at %d: partial header", fileSize-pos, pos)
			break
		}
		hb, err := fill(pos, BatchHeaderSize)
		if err != nil {
			return res, err
		}
		h, err := ParseBatchHeader(hb)
		if err != nil {
			res.reason = fmt.Sprintf("at %d: %v", pos, err)
			break
		}
		size := int64(h.Size())
		if pos+size > fileSize {
			res.reason = fmt.Sprintf("at %d: batch of %d bytes past the end of the file", pos, size)
			break
		}
		if h.BaseOffset < res.next || (contiguous && h.BaseOffset != res.next) || h.LastOffset()-base > 1<<31-1 {
			res.reason = fmt.Sprintf("at %d: batch offset %d out of sequence (want >= %d)", pos, h.BaseOffset, res.next)
			break
		}
		b, err := fill(pos, size)
		if err != nil {
			return res, err
		}
		if b == nil {
			res.reason = fmt.Sprintf("at %d: short read", pos)
			break
		}
		if err := VerifyBatch(&h, b); err != nil {
			res.reason = fmt.Sprintf("at %d: %v", pos, err)
			break
		}
		res.addBatch(base, pos, &h, interval)
		pos += size
	}
	res.end = pos
	return res, nil
}

func (r *scanResult) addBatch(base, pos int64, h *BatchHeader, interval int64) {
	if r.firstTs < 0 {
		r.firstTs = h.BaseTimestamp
	}
	indexPolicy(base, pos, h, interval, &r.sinceIdx, &r.index, &r.times, &r.maxTs)
	r.next = h.LastOffset() + 1
}

// addFinalTimeEntryLocked records the segment's largest timestamp as its last
// time-index entry, where retention and time lookups read it once the
// segment is closed. Called with mu held.
func (s *segment) addFinalTimeEntryLocked() {
	if e, ok := finalTimeEntry(s.times, s.maxTs); ok {
		s.times = append(s.times, e)
		s.timeBuf = appendTimeEntry(s.timeBuf, e)
	}
}

// finalTimeEntry is the entry that records maxTs, a segment's largest
// timestamp, after times; ok is false when times already ends with it.
func finalTimeEntry(times []timeEntry, maxTs int64) (timeEntry, bool) {
	n := len(times)
	if maxTs < 0 || (n > 0 && times[n-1].ts >= maxTs) {
		return timeEntry{}, false
	}
	rel := uint32(0)
	if n > 0 {
		rel = times[n-1].rel
	}
	return timeEntry{maxTs, rel}, true
}

// seal finishes a segment that stops being active: its final time-index
// entry, then everything synced.
func (s *segment) seal(syncLog bool) error {
	s.mu.Lock()
	s.addFinalTimeEntryLocked()
	s.mu.Unlock()
	if err := s.writeIndexes(); err != nil {
		return err
	}
	if err := s.syncIndexes(); err != nil {
		return err
	}
	s.closeIndexFiles() // a closed segment's indexes are not appended to again
	if syncLog {
		if err := s.disk.fsync(s.f); err != nil {
			return fmt.Errorf("sync segment %s: %w", s.path(logSuffix), err)
		}
	}
	return nil
}

// syncIndexes syncs both index files, through the append handles when the
// segment has them.
func (s *segment) syncIndexes() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range []struct {
		f      *os.File
		suffix string
	}{{s.idxF, indexSuffix}, {s.timeF, timeIndexSuffix}} {
		var err error
		if w.f != nil {
			err = s.disk.fsync(w.f)
		} else {
			err = s.disk.syncFile(s.path(w.suffix))
		}
		if err != nil {
			return fmt.Errorf("sync index %s: %w", s.path(w.suffix), err)
		}
	}
	return nil
}

func (s *segment) maxTimestamp() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.maxTs
}

func (s *segment) rollTimestamp() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.rollTs
}

func (s *segment) nextOffset() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.next
}

// remove unlinks the segment's files; the log file stays readable by readers
// that hold it until the last reference is released.
func (s *segment) remove() error {
	var errs []error
	for _, suf := range []string{logSuffix, indexSuffix, timeIndexSuffix} {
		if err := os.Remove(s.path(suf)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	s.release()
	return errors.Join(errs...)
}
