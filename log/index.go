package log

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"sort"
)

// A segment's two sparse indexes, as Kafka keeps them:
//
//   - .index maps offsets to file positions: an entry (offset - base,
//     position) for the first batch after every index_interval_bytes.
//   - .timeindex maps timestamps to offsets: an entry (largest timestamp so
//     far, offset - base of the batch that raised it), at the same points,
//     and a last entry with the segment's largest timestamp when it closes.
//
// Both live in memory and in files. The files of the active segment are
// appended to without fsync, because open rebuilds them from the log; a
// segment's files are synced when it closes. indexPolicy decides entries
// the same way for appends and for recovery scans, so a rebuilt index is the
// index that appends wrote.

// loadIndexes reads the index files of a closed segment and checks them
// against the log file; it returns why they cannot be trusted, or "".
func (s *segment) loadIndexes(fileSize int64) string {
	idx, err := os.ReadFile(s.path(indexSuffix))
	if err != nil {
		return err.Error()
	}
	tidx, err := os.ReadFile(s.path(timeIndexSuffix))
	if err != nil {
		return err.Error()
	}
	if len(idx)%indexEntrySize != 0 || len(tidx)%timeEntrySize != 0 {
		return "index size is not a whole number of entries"
	}
	if fileSize > 0 && len(tidx) == 0 {
		return "time index is empty"
	}
	s.index = make([]indexEntry, len(idx)/indexEntrySize)
	for i := range s.index {
		e := indexEntry{binary.BigEndian.Uint32(idx[i*8:]), binary.BigEndian.Uint32(idx[i*8+4:])}
		if int64(e.pos) >= fileSize || (i > 0 && (e.rel <= s.index[i-1].rel || e.pos <= s.index[i-1].pos)) {
			return "offset index entries out of order or past the end"
		}
		s.index[i] = e
	}
	s.times = make([]timeEntry, len(tidx)/timeEntrySize)
	for i := range s.times {
		e := timeEntry{int64(binary.BigEndian.Uint64(tidx[i*12:])), binary.BigEndian.Uint32(tidx[i*12+8:])}
		if i > 0 && (e.ts < s.times[i-1].ts || e.rel < s.times[i-1].rel) {
			return "time index entries out of order"
		}
		s.times[i] = e
	}
	if n := len(s.index); n > 0 {
		// The last entry must point at a batch that starts with its offset.
		var hdr [BatchHeaderSize]byte
		e := s.index[n-1]
		if _, err := s.f.ReadAt(hdr[:], int64(e.pos)); err != nil {
			return "last index entry unreadable: " + err.Error()
		}
		h, err := ParseBatchHeader(hdr[:])
		if err != nil || h.BaseOffset != s.base+int64(e.rel) {
			return "last index entry does not point at its batch"
		}
	}
	if n := len(s.times); n > 0 {
		s.maxTs = s.times[n-1].ts
	}
	return ""
}

// indexPolicy decides index entries the same way for appends and scans, so a
// rebuilt index equals the one written while appending.
func indexPolicy(base, pos int64, h *BatchHeader, interval int64, sinceIdx *int64, index *[]indexEntry, times *[]timeEntry, maxTs *int64) {
	indexed := false
	if *sinceIdx >= interval {
		*index = append(*index, indexEntry{uint32(h.BaseOffset - base), uint32(pos)})
		*sinceIdx = 0
		indexed = true
	}
	*sinceIdx += int64(h.Size())
	if h.MaxTimestamp > *maxTs {
		*maxTs = h.MaxTimestamp
		if indexed || len(*times) == 0 {
			*times = append(*times, timeEntry{*maxTs, uint32(h.BaseOffset - base)})
		}
	}
}

// noteAppend records a batch the flusher is about to write at pos, queueing
// any index entries it earns for the next writeIndexes.
func (s *segment) noteAppend(pos int64, h *BatchHeader, interval, nowMs int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rollTs < 0 {
		s.rollTs = nowMs
	}
	ni, nt := len(s.index), len(s.times)
	indexPolicy(s.base, pos, h, interval, &s.sinceIdx, &s.index, &s.times, &s.maxTs)
	for _, e := range s.index[ni:] {
		s.idxBuf = appendIndexEntry(s.idxBuf, e)
	}
	for _, e := range s.times[nt:] {
		s.timeBuf = appendTimeEntry(s.timeBuf, e)
	}
	s.next = h.LastOffset() + 1
}

func appendIndexEntry(b []byte, e indexEntry) []byte {
	b = binary.BigEndian.AppendUint32(b, e.rel)
	return binary.BigEndian.AppendUint32(b, e.pos)
}

func appendTimeEntry(b []byte, e timeEntry) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(e.ts))
	return binary.BigEndian.AppendUint32(b, e.rel)
}

// writeIndexes appends queued index entries to the index files. The files
// are not synced here: the active segment's indexes are rebuilt on recovery,
// and a segment's indexes are synced when it is closed by a roll.
func (s *segment) writeIndexes() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range []struct {
		f      **os.File
		suffix string
		b      *[]byte
	}{{&s.idxF, indexSuffix, &s.idxBuf}, {&s.timeF, timeIndexSuffix, &s.timeBuf}} {
		if len(*w.b) == 0 {
			continue
		}
		if *w.f == nil {
			f, err := s.disk.create(s.path(w.suffix), os.O_WRONLY|os.O_APPEND|os.O_CREATE)
			if err != nil {
				return fmt.Errorf("open index %s: %w", s.path(w.suffix), err)
			}
			*w.f = f
		}
		if err := s.disk.write(*w.f, *w.b); err != nil {
			return fmt.Errorf("append to index %s: %w", s.path(w.suffix), err)
		}
		*w.b = (*w.b)[:0]
	}
	return nil
}

// encodeIndexes is a segment's indexes as their files hold them.
func encodeIndexes(index []indexEntry, times []timeEntry) (idx, tidx []byte) {
	idx = make([]byte, 0, len(index)*indexEntrySize)
	for _, e := range index {
		idx = appendIndexEntry(idx, e)
	}
	tidx = make([]byte, 0, len(times)*timeEntrySize)
	for _, e := range times {
		tidx = appendTimeEntry(tidx, e)
	}
	return idx, tidx
}

// rewriteIndexes replaces both index files with the in-memory indexes.
//
// An active segment's indexes are rebuilt from its scan on every open, so
// their files need not be durable; when they already hold the rebuilt
// bytes (as a clean close leaves them), keepSame leaves them be, which
// saves an open four fsyncs.
func (s *segment) rewriteIndexes(keepSame bool) error {
	s.mu.Lock()
	idx, tidx := encodeIndexes(s.index, s.times)
	s.idxBuf, s.timeBuf = nil, nil
	s.mu.Unlock()
	if keepSame && sameFile(s.path(indexSuffix), idx) && sameFile(s.path(timeIndexSuffix), tidx) {
		return nil
	}
	s.closeIndexFiles() // the files are replaced: reopen on the next append
	if err := s.disk.writeFileSync(s.path(indexSuffix), idx); err != nil {
		return err
	}
	return s.disk.writeFileSync(s.path(timeIndexSuffix), tidx)
}

// sameFile says whether the file at path holds exactly b.
func sameFile(path string, b []byte) bool {
	got, err := os.ReadFile(path)
	return err == nil && bytes.Equal(got, b)
}

// lookup returns the file position of the batch the sparse index names for
// the largest indexed offset <= offset; reading forward from there finds it.
func (s *segment) lookup(offset int64) int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	rel := offset - s.base
	i := sort.Search(len(s.index), func(i int) bool { return int64(s.index[i].rel) > rel })
	if i == 0 {
		return 0
	}
	return int64(s.index[i-1].pos)
}

// timeLookup returns an offset to start scanning from for the first record
// with timestamp >= ts: every record before it has a smaller timestamp.
func (s *segment) timeLookup(ts int64) int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	i := sort.Search(len(s.times), func(i int) bool { return s.times[i].ts >= ts })
	if i == 0 {
		return s.base
	}
	return s.base + int64(s.times[i-1].rel)
}
