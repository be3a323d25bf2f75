package log

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"time"
)

// FetchResult is a run of complete batches read from one segment.
type FetchResult struct {
	// Data holds whole record batches, each CRC-checked. The first batch may
	// start before the requested offset; DecodeBatches skips those records.
	Data []byte
	// NextOffset is where the next fetch should start: after the last batch
	// in Data, or the requested offset when Data is empty.
	NextOffset     int64
	HighWatermark  int64
	LogStartOffset int64
}

// Fetch reads batches starting with the one that holds offset, up to about
// maxBytes (at least one whole batch, however large, so a consumer always
// makes progress). It returns ErrOffsetOutOfRange below the log start or
// above the high watermark, and nothing at the high watermark. It never
// returns a batch whose CRC fails: that is reported as ErrCorruptBatch.
func (p *Partition) Fetch(offset int64, maxBytes int) (FetchResult, error) {
	return p.FetchInto(nil, offset, maxBytes)
}

// FetchInto is Fetch reading into buf's storage when it is large enough, so
// a consumer that is done with the previous result can reuse it.
func (p *Partition) FetchInto(buf []byte, offset int64, maxBytes int) (FetchResult, error) {
	res := FetchResult{NextOffset: offset, HighWatermark: p.hw.Load(), LogStartOffset: p.LogStartOffset()}
	if offset < res.LogStartOffset || offset > res.HighWatermark {
		return res, fmt.Errorf("fetch %s at %d: %w: the log holds %d..%d", p, offset, ErrOffsetOutOfRange, res.LogStartOffset, res.HighWatermark)
	}
	for offset < res.HighWatermark {
		data, next, err := p.readAt(buf, offset, maxBytes, res.HighWatermark)
		if err != nil {
			return res, fmt.Errorf("fetch %s at %d: %w", p, offset, err)
		}
		if len(data) > 0 {
			res.Data, res.NextOffset = data, next
			return res, nil
		}
		// Nothing at or after offset in this segment (compaction may have
		// emptied its end): go on with the next one.
		if next <= offset {
			break
		}
		offset = next
		res.NextOffset = next
	}
	return res, nil
}

// readAt reads the batches from the one holding offset in the segment
// that holds it: a local one, or below the local start an archived one.
func (p *Partition) readAt(buf []byte, offset int64, maxBytes int, hw int64) ([]byte, int64, error) {
	if offset < p.logStart.Load() {
		return p.fetchArchived(buf, offset, maxBytes)
	}
	seg, ok := p.segmentFor(offset)
	if !ok {
		return nil, 0, fmt.Errorf("%w: no segment holds it", ErrOffsetOutOfRange)
	}
	defer seg.release()
	return p.readSegment(seg, buf, offset, maxBytes, hw)
}

// segmentFor returns, acquired, the segment whose range holds offset.
func (p *Partition) segmentFor(offset int64) (*segment, bool) {
	p.segsMu.RLock()
	defer p.segsMu.RUnlock()
	i := sort.Search(len(p.segs), func(i int) bool { return p.segs[i].base > offset }) - 1
	if i < 0 {
		return nil, false
	}
	s := p.segs[i]
	s.acquire()
	return s, true
}

// segmentAfter returns, acquired, the first segment with base > base.
func (p *Partition) segmentAfter(base int64) (*segment, bool) {
	p.segsMu.RLock()
	defer p.segsMu.RUnlock()
	i := sort.Search(len(p.segs), func(i int) bool { return p.segs[i].base > base })
	if i == len(p.segs) {
		return nil, false
	}
	s := p.segs[i]
	s.acquire()
	return s, true
}

// readSegment reads from seg the batches from the one holding offset, at
// most maxBytes (but one batch at least), below hw. It returns the bytes and
// the offset after the last batch returned; with no bytes, the offset where
// the next segment starts.
func (p *Partition) readSegment(seg *segment, buf []byte, offset int64, maxBytes int, hw int64) ([]byte, int64, error) {
	size := seg.size.Load()
	pos, h, err := findBatch(seg, offset, size)
	if err != nil {
		return nil, 0, err
	}
	if pos < 0 {
		if next, ok := p.segmentAfter(seg.base); ok {
			base := next.base
			next.release()
			return nil, base, nil
		}
		return nil, offset, nil
	}
	if h.BaseOffset >= hw {
		return nil, offset, nil
	}
	n := min(int64(max(maxBytes, h.Size())), size-pos)
	if int64(cap(buf)) >= n {
		buf = buf[:n]
	} else {
		buf = make([]byte, n)
	}
	if _, err := seg.f.ReadAt(buf, pos); err != nil && !errors.Is(err, io.EOF) {
		return nil, 0, fmt.Errorf("read segment %s at %d: %w", seg.path(logSuffix), pos, err)
	}
	// Keep only whole batches below the high watermark.
	end, next := 0, offset
	for end < len(buf) {
		bh, err := ParseBatchHeader(buf[end:])
		if err != nil || end+bh.Size() > len(buf) || bh.BaseOffset >= hw {
			break
		}
		if err := VerifyBatch(&bh, buf[end:]); err != nil {
			if end == 0 {
				return nil, 0, fmt.Errorf("segment %s at %d: %w", seg.path(logSuffix), pos, err)
			}
			break // return the good ones; the next fetch reports this one
		}
		end += bh.Size()
		next = bh.LastOffset() + 1
	}
	return buf[:end], next, nil
}

// findBatch returns the position and header of the first batch in seg whose
// last offset is >= offset, or pos -1 when there is none below size.
func findBatch(seg *segment, offset, size int64) (int64, BatchHeader, error) {
	var hdr [BatchHeaderSize]byte
	for pos := seg.lookup(offset); pos < size; {
		if _, err := seg.f.ReadAt(hdr[:], pos); err != nil {
			return 0, BatchHeader{}, fmt.Errorf("read segment %s at %d: %w", seg.path(logSuffix), pos, err)
		}
		h, err := ParseBatchHeader(hdr[:])
		if err != nil {
			return 0, h, fmt.Errorf("segment %s at %d: %w", seg.path(logSuffix), pos, err)
		}
		if h.LastOffset() >= offset {
			return pos, h, nil
		}
		pos += int64(h.Size())
	}
	return -1, BatchHeader{}, nil
}

// OffsetForTime returns the earliest offset whose record timestamp is at or
// after t, as Kafka's ListOffsets does; ok is false when every record is
// older (the offset is then the high watermark).
func (p *Partition) OffsetForTime(t time.Time) (offset int64, ok bool, err error) {
	ts := t.UnixMilli()
	hw := p.hw.Load()
	// Only the segments' in-memory indexes are read here; Fetch takes its
	// own reference on the segment it reads.
	p.segsMu.RLock()
	segs := append([]*segment(nil), p.segs...)
	p.segsMu.RUnlock()
	// Where to look: archived segments below the local ones (from their
	// start), then the local ones (from their time index).
	type candidate struct {
		maxTs int64
		start func() int64
	}
	var cands []candidate
	if m := p.manifest.Load(); m != nil {
		for _, a := range m.Segments {
			if a.Base < p.logStart.Load() {
				cands = append(cands, candidate{a.MaxTimestamp, func() int64 { return a.Base }})
			}
		}
	}
	for _, s := range segs {
		cands = append(cands, candidate{s.maxTimestamp(), func() int64 { return max(s.timeLookup(ts), p.logStart.Load()) }})
	}
	for _, c := range cands {
		if c.maxTs < ts {
			continue
		}
		start := c.start()
		for start < hw {
			res, err := p.Fetch(start, 1<<20)
			if err != nil {
				return 0, false, err
			}
			if len(res.Data) == 0 {
				break
			}
			data := res.Data
			for len(data) > 0 {
				h, _ := ParseBatchHeader(data)
				if h.MaxTimestamp >= ts {
					recs, err := decodeRecords(nil, &h, data[:h.Size()], start)
					if err != nil {
						return 0, false, fmt.Errorf("offset for time in %s: %w", p, err)
					}
					for _, r := range recs {
						if r.Timestamp.UnixMilli() >= ts {
							return r.Offset, true, nil
						}
					}
				}
				data = data[h.Size():]
			}
			start = res.NextOffset
		}
	}
	return hw, false, nil
}
