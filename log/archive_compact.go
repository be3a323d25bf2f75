package log

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"time"
)

// A compacted topic's archive is compacted too, by the archive run:
//
//   - Before it uploads, the run compacts the local segments, so the
//     segments it archives are cleaned ones.
//   - Now and then (archiveCompactionDue) it compacts the whole partition
//     at once: the latest offset of each key is taken over the archive and
//     the local segments, each archived segment that loses records is
//     rewritten under a new key and the manifest records the new ones,
//     then the local segments are compacted by the same offsets. Objects
//     the manifest no longer names are deleted by the next run.
//
// A tombstone goes only where nothing older of its key is left to
// resurrect: in the archive, and in the local segments in the same pass
// after the archive's manifest is durable; local passes in between drop
// only tombstones below the archive's last compaction (tombstoneLimit).

// compactForArchiveLocked is the compaction an archive run of a compacted
// topic does first, with archMu held.
func (p *Partition) compactForArchiveLocked(ctx context.Context, pol *ArchivePolicy, now time.Time) error {
	if err := p.collectGarbageLocked(ctx, pol); err != nil {
		return err
	}
	if p.archiveCompactionDue(p.manifest.Load(), p.hw.Load(), now) {
		st, err := p.compactArchiveLocked(ctx, pol, now)
		if err != nil {
			return err
		}
		p.log.Info("archive compacted", "store", pol.StoreName, "segments_rewritten", st.SegmentsRewritten,
			"records_removed", st.RecordsRemoved, "tombstones_removed", st.TombstonesRemoved)
		return nil
	}
	_, err := p.compactLocal()
	return err
}

// archiveCompactionDue says whether the whole partition is compacted now:
// when at least half of its offsets came after the archive's last
// compaction (Kafka's default min.cleanable.dirty.ratio), or, with
// anything new or a tombstone kept, once delete_retention has passed
// since it.
func (p *Partition) archiveCompactionDue(m *manifest, hw int64, now time.Time) bool {
	if len(m.Segments) == 0 {
		return false
	}
	start := m.Segments[0].Base
	dirty := hw - max(m.CompactedTo, start)
	if dirty > 0 && 2*dirty >= hw-start {
		return true
	}
	return (dirty > 0 || m.TombstonesKept) && now.Sub(m.CompactedAt) >= time.Duration(p.cfg.DeleteRetention)
}

// compactArchiveLocked compacts the archived segments and then the local
// ones by the latest offset of each key over both, with archMu held.
func (p *Partition) compactArchiveLocked(ctx context.Context, pol *ArchivePolicy, now time.Time) (CompactStats, error) {
	var st CompactStats
	p.cleanMu.Lock()
	defer p.cleanMu.Unlock()
	hw := p.hw.Load()
	latest, err := p.latestOffsets(p.LogStartOffset(), hw)
	if err != nil {
		return st, fmt.Errorf("compact the archive of %s: %w", p, err)
	}
	expire := now.UnixMilli() - time.Duration(p.cfg.DeleteRetention).Milliseconds()
	m := p.manifest.Load()
	next := *m
	next.Segments = append([]ArchivedSegment(nil), m.Segments...)
	next.Garbage = append([]string(nil), m.Garbage...)
	kept := false
	var failed error
	for i, seg := range m.Segments {
		if err := ctx.Err(); err != nil {
			failed = err
			break
		}
		entry, c, err := p.compactArchivedSegment(ctx, pol.Store, seg, latest, expire, now)
		if err != nil {
			failed = err
			break
		}
		kept = kept || c.tombstonesKept
		if c.removed == 0 {
			continue
		}
		next.Segments[i] = entry
		next.Garbage = append(next.Garbage, seg.Key, indexKey(seg.Key), timeIndexKey(seg.Key))
		st.SegmentsRewritten++
		st.RecordsRemoved += c.removed
		st.TombstonesRemoved += c.tombstones
	}
	if failed == nil {
		next.CompactedTo, next.CompactedAt, next.TombstonesKept = hw, now.UTC(), kept
	}
	// The segments rewritten so far are good ones whatever happened
	// after: record them (and, with all done, the new compacted offset).
	if st.SegmentsRewritten > 0 || failed == nil {
		if err := p.storeManifestLocked(ctx, pol.Store, &next); err != nil {
			return st, errors.Join(failed, err)
		}
	}
	if failed != nil {
		return st, failed
	}
	// Only now may the local segments lose their tombstones.
	local, err := p.compactSegmentsLocked(latest, hw, hw)
	st.SegmentsRewritten += local.SegmentsRewritten
	st.RecordsRemoved += local.RecordsRemoved
	st.TombstonesRemoved += local.TombstonesRemoved
	return st, err
}

// compactArchivedSegment reads an archived segment whole, checks it, and,
// when compaction removes records from it, stores the compacted segment
// under its new key and returns its entry.
func (p *Partition) compactArchivedSegment(ctx context.Context, store ArchiveStore, seg ArchivedSegment, latest map[string]int64, expire int64, now time.Time) (ArchivedSegment, compacted, error) {
	fail := func(err error) (ArchivedSegment, compacted, error) {
		return seg, compacted{}, fmt.Errorf("compact the archive of %s: %s: segment %s: %w", p, store, seg.Key, err)
	}
	if seg.Size == 0 {
		return seg, compacted{}, nil
	}
	data := make([]byte, seg.Size)
	if n, err := store.ReadAt(ctx, seg.Key, data, 0); err != nil && !(errors.Is(err, io.EOF) && int64(n) == seg.Size) {
		return fail(err)
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != seg.SHA256 {
		return fail(errors.New("its bytes do not match the manifest's checksum"))
	}
	out, c, err := compactBatches(data, latest, expire, math.MaxInt64)
	if err != nil || c.removed == 0 {
		if err != nil {
			return fail(err)
		}
		return seg, c, nil
	}
	res, err := scanSegment(bytes.NewReader(out), seg.Base, int64(len(out)), p.cfg.IndexIntervalBytes, false)
	if err == nil && res.end != int64(len(out)) {
		err = fmt.Errorf("rewritten segment does not verify: %s", res.reason)
	}
	if err != nil {
		return fail(err)
	}
	maxTs := max(res.maxTs, seg.MaxTimestamp)
	times := res.times
	if e, ok := finalTimeEntry(times, maxTs); ok {
		times = append(times, e)
	}
	snap := &segmentSnapshot{base: seg.Base, last: seg.Last, body: bytes.NewReader(out), size: int64(len(out)), maxTs: maxTs}
	snap.index, snap.times = encodeIndexes(res.index, times)
	entry, err := p.upload(ctx, store, snap, now)
	if err != nil {
		return fail(err)
	}
	return entry, c, nil
}

// collectGarbageLocked deletes the objects of segments an earlier
// compaction replaced, and records that they are gone.
func (p *Partition) collectGarbageLocked(ctx context.Context, pol *ArchivePolicy) error {
	m := p.manifest.Load()
	if len(m.Garbage) == 0 {
		return nil
	}
	var left []string
	var errs []error
	for _, k := range m.Garbage {
		if err := pol.Store.Delete(ctx, k); err != nil {
			left = append(left, k)
			errs = append(errs, err)
		}
	}
	next := *m
	next.Garbage = left
	if err := p.storeManifestLocked(ctx, pol.Store, &next); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("archive %s: delete replaced segments: %w", pol.Store, err)
	}
	return nil
}
