package log

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"time"
)

// Clean applies retention to every topic with cleanup "delete" and
// compaction to every topic with cleanup "compact". The background cleaner
// calls it on its interval; tests and tools may call it directly.
func (l *Log) Clean(ctx context.Context) error {
	var errs []error
	for _, p := range l.partitions() {
		if err := ctx.Err(); err != nil {
			return err
		}
		var err error
		if p.cfg.Cleanup == CleanupCompact {
			_, err = p.Compact()
			if _, archived := p.archivePolicy(); archived && err == nil {
				_, err = p.ApplyRetention() // local copies of archived segments
			}
		} else {
			_, err = p.ApplyRetention()
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ApplyRetention deletes whole closed segments that retention no longer
// keeps: those whose newest record is older than the retention time, and
// the oldest ones while the partition stays at or above retention_bytes
// without them (Kafka's rule). The active segment is never deleted. It
// returns how many segments went.
func (p *Partition) ApplyRetention() (int, error) {
	p.flushMu.Lock() // no roll while the segment list is cut
	defer p.flushMu.Unlock()
	p.segsMu.RLock()
	segs := append([]*segment(nil), p.segs...)
	p.segsMu.RUnlock()
	closed := segs[:len(segs)-1]
	now := p.clock().UnixMilli()
	drop := 0
	if pol, ok := p.archivePolicy(); ok {
		// Archived: local copies go by the local bounds once archived, and
		// any segment past the archive's own retention goes.
		drop = p.archivedDrop(segs, &pol, now)
		if r := pol.Retention; r >= 0 {
			for drop < len(closed) && now-closed[drop].maxTimestamp() > r.Milliseconds() {
				drop++
			}
		}
		return p.dropSegmentsLocked(segs, drop)
	}
	if r := time.Duration(p.cfg.Retention); r >= 0 {
		for drop < len(closed) && now-closed[drop].maxTimestamp() > r.Milliseconds() {
			drop++
		}
	}
	if p.cfg.RetentionBytes >= 0 {
		var total int64
		for _, s := range segs[drop:] {
			total += s.size.Load()
		}
		for drop < len(closed) && total-closed[drop].size.Load() >= p.cfg.RetentionBytes {
			total -= closed[drop].size.Load()
			drop++
		}
	}
	drop = p.protect(segs, drop)
	return p.dropSegmentsLocked(segs, drop)
}

// dropSegmentsLocked deletes the oldest drop segments of segs (the list
// as it is), under flushMu.
func (p *Partition) dropSegmentsLocked(segs []*segment, drop int) (int, error) {
	closed := segs[:len(segs)-1]
	if drop == 0 {
		return 0, nil
	}
	p.segsMu.Lock()
	p.segs = p.segs[drop:]
	p.logStart.Store(p.segs[0].base)
	p.segsMu.Unlock()
	var errs []error
	for _, s := range closed[:drop] {
		if err := s.remove(); err != nil {
			errs = append(errs, err)
		}
	}
	p.log.Info("retention deleted segments", "segments", drop, "log_start_offset", p.logStart.Load())
	if err := errors.Join(errs...); err != nil {
		return drop, fmt.Errorf("retention in %s: %w", p, err)
	}
	return drop, nil
}

// CompactStats says what one compaction pass did.
type CompactStats struct {
	SegmentsRewritten int
	RecordsRemoved    int
	TombstonesRemoved int
}

// Compact keeps, in the closed segments, only the latest record of each key
// below the high watermark, and drops a latest record that is a tombstone
// once it is older than delete_retention. Offsets never change: a batch is
// rewritten with its base offset, last offset delta and each record's own
// offset, so consumers' positions stay valid.
//
// A segment is rewritten to <base>.log.cleaned, synced, and renamed over the
// original; its index files are removed before the rename and rewritten
// after it, so a crash leaves the old segment, or the new one with indexes
// to rebuild. Open removes any leftover .cleaned file.
//
// Of an archived topic it compacts the local segments only, and drops a
// tombstone only where the archive no longer holds what it deletes (see
// tombstoneLimit); the archive run compacts the archive. While an archive
// run is under way it does nothing: the run compacts before it uploads.
func (p *Partition) Compact() (CompactStats, error) {
	var st CompactStats
	if p.cfg.Cleanup != CleanupCompact {
		return st, nil
	}
	if _, ok := p.archivePolicy(); ok {
		if !p.archMu.TryLock() {
			return st, nil
		}
		defer p.archMu.Unlock()
	}
	return p.compactLocal()
}

// compactLocal is a compaction pass of the local segments, with archMu
// held for an archived topic.
func (p *Partition) compactLocal() (CompactStats, error) {
	p.cleanMu.Lock() // one compaction of a partition at a time
	defer p.cleanMu.Unlock()
	hw := p.hw.Load()
	p.segsMu.RLock()
	n := len(p.segs)
	p.segsMu.RUnlock()
	if n < 2 || (hw == p.cleanedHW && !p.tombstonesKept) {
		return CompactStats{}, nil
	}
	latest, err := p.latestOffsets(p.logStart.Load(), hw)
	if err != nil {
		return CompactStats{}, fmt.Errorf("compact %s: %w", p, err)
	}
	return p.compactSegmentsLocked(latest, hw, p.tombstoneLimit())
}

// tombstoneLimit is the offset below which compaction of the local
// segments may drop an expired tombstone. Of a topic not archived, or
// whose archive holds nothing, any. Of an archived one, those below the
// last compaction of the archive (which removed the older records of
// their keys from it); none before the archive's manifest is known: a
// tombstone dropped while the archive still holds a value it deleted
// would bring the value back for a reader from the start.
func (p *Partition) tombstoneLimit() int64 {
	if _, ok := p.archivePolicy(); !ok {
		return math.MaxInt64
	}
	switch m := p.manifest.Load(); {
	case m == nil:
		return 0
	case len(m.Segments) == 0:
		return math.MaxInt64
	default:
		return m.CompactedTo
	}
}

// compactSegmentsLocked compacts the closed local segments by latest (the
// offset of each key's last record below hw), with cleanMu held.
func (p *Partition) compactSegmentsLocked(latest map[string]int64, hw, tombLimit int64) (CompactStats, error) {
	var st CompactStats
	p.segsMu.RLock()
	segs := append([]*segment(nil), p.segs...)
	p.segsMu.RUnlock()
	expire := p.clock().UnixMilli() - time.Duration(p.cfg.DeleteRetention).Milliseconds()
	kept := false
	for _, s := range segs[:len(segs)-1] {
		data := make([]byte, s.size.Load())
		if _, err := s.f.ReadAt(data, 0); err != nil && !errors.Is(err, io.EOF) {
			return st, fmt.Errorf("compact %s: segment %s: read: %w", p, segmentName(s.base), err)
		}
		out, c, err := compactBatches(data, latest, expire, tombLimit)
		kept = kept || c.tombstonesKept
		if err == nil && c.removed > 0 {
			err = p.replaceSegment(s, out)
		}
		if err != nil {
			return st, fmt.Errorf("compact %s: segment %s: %w", p, segmentName(s.base), err)
		}
		if c.removed > 0 {
			st.SegmentsRewritten++
			st.RecordsRemoved += c.removed
			st.TombstonesRemoved += c.tombstones
		}
	}
	p.cleanedHW, p.tombstonesKept = hw, kept
	return st, nil
}

// latestOffsets maps every key in [from, hw) to the offset of its last
// record; below the local start it reads the archive.
func (p *Partition) latestOffsets(from, hw int64) (map[string]int64, error) {
	latest := map[string]int64{}
	var recs []Record
	var buf []byte
	for off := from; off < hw; {
		res, err := p.FetchInto(buf, off, 4<<20)
		if err != nil {
			return nil, err
		}
		if len(res.Data) == 0 {
			break
		}
		if recs, err = DecodeBatches(recs[:0], res.Data, off); err != nil {
			return nil, err
		}
		for _, r := range recs {
			if r.Offset < hw {
				latest[string(r.Key)] = r.Offset
			}
		}
		off, buf = res.NextOffset, res.Data
	}
	return latest, nil
}

// compacted says what compactBatches removed and kept.
type compacted struct {
	removed, tombstones int
	tombstonesKept      bool
}

// compactBatches returns the batches of data (a segment's bytes, each
// batch CRC-checked) without the records latest says are superseded and
// the tombstones older than expire below tombLimit. A batch that loses
// records is re-encoded with its base offset, last offset delta and base
// timestamp; one that loses all goes. With nothing removed, out is nil.
func compactBatches(data []byte, latest map[string]int64, expire, tombLimit int64) ([]byte, compacted, error) {
	var c compacted
	out := make([]byte, 0, len(data))
	var recs []Record
	for rest := data; len(rest) > 0; {
		h, err := ParseBatchHeader(rest)
		if err != nil {
			return nil, c, err
		}
		if err := VerifyBatch(&h, rest); err != nil {
			return nil, c, err
		}
		batch := rest[:h.Size()]
		rest = rest[h.Size():]
		if recs, err = decodeRecords(recs[:0], &h, batch, 0); err != nil {
			return nil, c, err
		}
		kept := recs[:0:0]
		for _, r := range recs {
			last, ok := latest[string(r.Key)]
			switch {
			case ok && last != r.Offset:
				c.removed++
			case r.Value == nil && r.Timestamp.UnixMilli() < expire && r.Offset < tombLimit:
				c.removed++
				c.tombstones++
			default:
				kept = append(kept, r)
				c.tombstonesKept = c.tombstonesKept || r.Value == nil
			}
		}
		switch {
		case len(kept) == len(recs):
			out = append(out, batch...)
		case len(kept) > 0:
			if out, _, err = encodeBatchWith(out, kept, h.Compression(), time.UnixMilli(h.BaseTimestamp), h.BaseOffset, h.LastOffsetDelta); err != nil {
				return nil, c, err
			}
		}
	}
	if c.removed == 0 {
		return nil, c, nil
	}
	return out, c, nil
}

// replaceSegment swaps s for a segment holding data, at the same base.
func (p *Partition) replaceSegment(old *segment, data []byte) error {
	cleaned := old.path(logSuffix + cleanedSuffix)
	f, err := p.disk.create(cleaned, os.O_RDWR|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		return err
	}
	if err = p.disk.write(f, data); err == nil {
		err = p.disk.fsync(f)
	}
	if err != nil {
		f.Close()
		os.Remove(cleaned)
		return fmt.Errorf("write %s: %w", cleaned, err)
	}
	res, err := scanSegment(f, old.base, int64(len(data)), p.cfg.IndexIntervalBytes, false)
	if err == nil && res.end != int64(len(data)) {
		err = fmt.Errorf("rewritten segment does not verify: %s", res.reason)
	}
	if err != nil {
		f.Close()
		os.Remove(cleaned)
		return err
	}
	ns := &segment{dir: old.dir, base: old.base, f: f, disk: p.disk, index: res.index, times: res.times,
		sinceIdx: res.sinceIdx, maxTs: max(res.maxTs, old.maxTimestamp()), next: res.next, rollTs: res.firstTs}
	ns.size.Store(res.end)
	ns.refs.Store(1)
	ns.addFinalTimeEntryLocked() // keep the largest timestamp for retention and time lookups
	for _, suf := range []string{indexSuffix, timeIndexSuffix} {
		if err := os.Remove(old.path(suf)); err != nil && !errors.Is(err, os.ErrNotExist) {
			f.Close()
			return err
		}
	}
	if err := p.disk.rename(cleaned, old.path(logSuffix)); err != nil {
		f.Close()
		os.Remove(cleaned)
		return fmt.Errorf("swap in %s: %w", cleaned, err)
	}
	if err := p.disk.syncDir(old.dir); err != nil {
		f.Close()
		return err
	}
	if err := ns.rewriteIndexes(false); err != nil {
		f.Close()
		return err
	}
	p.segsMu.Lock()
	for i, s := range p.segs {
		if s == old {
			p.segs[i] = ns
		}
	}
	p.segsMu.Unlock()
	old.release()
	return nil
}
