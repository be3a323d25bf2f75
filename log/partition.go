package log

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Errors callers branch on.
var (
	ErrOffsetOutOfRange = errors.New("offset out of range")
	ErrRecordTooLarge   = errors.New("record too large")
	ErrBatchTooLarge    = errors.New("batch too large")
	ErrInvalidRecord    = errors.New("invalid record")
	ErrClosed           = errors.New("log closed")
	// ErrPartitionFailed marks the sticky error of a partition whose write
	// or fsync failed: it refuses appends until the log is reopened, which
	// recovers the segments to their last whole batch.
	ErrPartitionFailed = errors.New("partition failed")
)

// A flush round waits for stragglers at most maxRoundDelay (a fraction of
// an fsync on this class of disk), and not at all once it holds
// maxRoundBatches.
const (
	maxRoundDelay   = 200 * time.Microsecond
	maxRoundBatches = 1024
)

// directWriteBytes is the batch size from which the flusher writes a batch
// straight from the producer's buffer instead of coalescing it.
const directWriteBytes = 256 << 10

type pendingBatch struct {
	data []byte
	last int64
}

// flushRound is one write (and sync) of every batch queued since the last:
// its appenders wait on done, then read err.
type flushRound struct {
	done chan struct{}
	err  error
}

func newRound() *flushRound { return &flushRound{done: make(chan struct{})} }

// bufPool recycles encode buffers once the flusher has written them.
var bufPool = sync.Pool{New: func() any { return new([]byte) }}

func getBuf(n int) []byte {
	bp := bufPool.Get().(*[]byte)
	if cap(*bp) < n {
		return make([]byte, 0, n)
	}
	return (*bp)[:0]
}

func putBuf(b []byte) {
	if cap(b) > 64<<20 {
		return
	}
	b = b[:0]
	bufPool.Put(&b)
}

// Partition is one ordered, durable sequence of records: a directory of
// segments of which the last is active.
//
// Appends take offsets in order under mu, queue their encoded batch in the
// current flush round and wait for it. The partition's flusher goroutine
// takes a whole round at a time, writes its batches and, under fsync
// "always", syncs once for all of them (group commit) before it moves the
// high watermark and wakes the round. Readers see only offsets below the
// high watermark, so no reader ever sees a record that is not yet durable
// under the policy.
type Partition struct {
	topic string
	id    int
	dir   string
	cfg   TopicConfig
	codec Compression
	clock func() time.Time
	log   *slog.Logger
	disk  *disk
	guard *retentionGuard // what retention keeps for readers (ProtectRetention)
	// What retention protection said last (protectQuiet...), under
	// flushMu, and the bytes it holds back for readers.
	protectStage  int
	retentionHeld atomic.Int64

	mu         sync.Mutex // guards nextOffset, pending, round, failed
	nextOffset int64
	pending    []pendingBatch
	round      *flushRound // the round pending batches will be written in
	failed     error       // sticky: after a write or fsync error nothing more is accepted
	failedAt   time.Time

	kick        chan struct{} // wakes the flusher (buffered, one)
	lastRound   int           // batches in the flusher's previous round (flusher only)
	stopFlusher chan struct{}
	flusherDone chan struct{}

	flushMu sync.Mutex // held while writing to the active segment, rolling or replacing segments
	dirty   bool       // written since the last sync (under flushMu)
	wbuf    []byte

	segsMu sync.RWMutex
	segs   []*segment // by base offset; the last is active

	// What the last compaction saw, so an unchanged partition is not read
	// again: the high watermark, and whether it kept tombstones that expire.
	cleanMu        sync.Mutex
	cleanedHW      int64
	tombstonesKept bool

	// The archive (archive.go): the topic's policy, and the manifest
	// (replaced whole under archMu; nil until read, from archive.json at
	// open or from the store on the first archive pass).
	archive  ArchivePolicies
	archMu   sync.Mutex
	manifest atomic.Pointer[manifest]
	cache    *archiveCache
	// metaArchived: topic.json is in the store (under archMu).
	metaArchived bool
	// Bytes local retention keeps because the archive does not hold them
	// yet, and whether that was said (under flushMu).
	archiveWaiting atomic.Int64
	archiveWarned  bool

	hw       atomic.Int64 // high watermark: offsets below it are durable and readable
	logStart atomic.Int64
	hwMu     sync.Mutex
	hwCh     chan struct{} // closed and replaced when the high watermark moves
	closed   atomic.Bool
}

// openPartition opens the partition in dir; with create it makes the
// directory, and without it a missing directory is an error, not an empty
// partition: data that vanished must be reported, never papered over.
func openPartition(dir, topic string, id int, cfg TopicConfig, o *options, create bool) (*Partition, error) {
	codec, err := ParseCompression(cfg.Compression)
	if err != nil {
		return nil, err
	}
	p := &Partition{topic: topic, id: id, dir: dir, cfg: cfg, codec: codec, clock: o.clock, guard: o.guard, disk: o.disk, archive: o.archive, cache: o.cache,
		log: o.logger.With("topic", topic, "partition", id), hwCh: make(chan struct{})}
	if create {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("open partition %s: %w", p, err)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("open partition %s: %w", p, err)
	}
	var bases []int64
	for _, e := range entries {
		name := e.Name()
		switch {
		case strings.HasSuffix(name, cleanedSuffix) || strings.HasSuffix(name, ".tmp"):
			// Left by a compaction or index rewrite that did not finish.
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				return nil, fmt.Errorf("open partition %s: remove leftover %s: %w", p, name, err)
			}
		case strings.HasSuffix(name, logSuffix):
			base, err := strconv.ParseInt(strings.TrimSuffix(name, logSuffix), 10, 64)
			if err != nil || base < 0 {
				return nil, fmt.Errorf("open partition %s: %s is not a segment name", p, name)
			}
			bases = append(bases, base)
		}
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })
	for i, base := range bases {
		s, err := openSegment(o.disk, dir, base, i == len(bases)-1, cfg.IndexIntervalBytes, p.log.Warn)
		if err != nil {
			p.closeSegments()
			return nil, fmt.Errorf("open partition %s: %w", p, err)
		}
		p.segs = append(p.segs, s)
	}
	if len(p.segs) == 0 {
		if !create {
			return nil, fmt.Errorf("open partition %s: %s holds no segment", p, dir)
		}
		s, err := createSegment(o.disk, dir, 0)
		if err != nil {
			return nil, fmt.Errorf("open partition %s: %w", p, err)
		}
		p.segs = []*segment{s}
	}
	active := p.segs[len(p.segs)-1]
	if now := o.clock().UnixMilli(); active.rollTs > now {
		active.rollTs = now // a record stamped in the future must not postpone the roll
	}
	p.nextOffset = active.next
	p.hw.Store(active.next)
	p.logStart.Store(p.segs[0].base)
	if err := p.openManifest(); err != nil {
		p.closeSegments()
		return nil, fmt.Errorf("open partition %s: %w", p, err)
	}
	p.round = newRound()
	p.kick = make(chan struct{}, 1)
	p.stopFlusher = make(chan struct{})
	p.flusherDone = make(chan struct{})
	go p.flusher()
	return p, nil
}

func (p *Partition) String() string { return p.topic + "/" + strconv.Itoa(p.id) }

// ID is the partition's number within its topic.
func (p *Partition) ID() int { return p.id }

// HighWatermark is the offset after the last durable, readable record.
func (p *Partition) HighWatermark() int64 { return p.hw.Load() }

// LogStartOffset is the first offset still held, locally or in the
// archive (retention moves it).
func (p *Partition) LogStartOffset() int64 {
	local := p.logStart.Load()
	if m := p.manifest.Load(); m != nil && len(m.Segments) > 0 {
		return min(local, m.Segments[0].Base)
	}
	return local
}

// LocalStartOffset is the first offset held in local segments.
func (p *Partition) LocalStartOffset() int64 { return p.logStart.Load() }

// Append writes recs as one batch and returns once the batch is durable
// under the topic's fsync policy. Offsets are assigned in call order.
// Records' Offset fields are ignored; a zero Timestamp takes the current time.
// ctx is checked before the batch is queued; once queued, Append waits for
// the outcome (an fsync is bounded), so a caller never takes a batch that
// was written for one that failed.
func (p *Partition) Append(ctx context.Context, recs []Record) (first, last int64, err error) {
	if err := ctx.Err(); err != nil {
		return 0, 0, err
	}
	if len(recs) == 0 {
		return 0, 0, fmt.Errorf("append to %s: %w: empty batch", p, ErrInvalidRecord)
	}
	if err := p.checkRecords(recs); err != nil {
		return 0, 0, fmt.Errorf("append to %s: %w", p, err)
	}
	buf, info, err := encodeBatch(getBuf(BatchHeaderSize+estimateSize(recs)), recs, p.codec, p.clock())
	if err != nil {
		return 0, 0, fmt.Errorf("append to %s: %w", p, err)
	}
	if len(buf) > p.cfg.MaxBatchBytes {
		putBuf(buf)
		return 0, 0, fmt.Errorf("append to %s: %w: %d bytes encoded, max_batch_bytes is %d", p, ErrBatchTooLarge, len(buf), p.cfg.MaxBatchBytes)
	}
	first, err = p.appendEncoded(buf, info)
	if err != nil {
		return 0, 0, err
	}
	return first, first + info.count - 1, nil
}

func (p *Partition) checkRecords(recs []Record) error {
	for i := range recs {
		r := &recs[i]
		n := len(r.Key) + len(r.Value)
		for _, h := range r.Headers {
			n += len(h.Key) + len(h.Value)
		}
		if n > p.cfg.MaxRecordBytes {
			return fmt.Errorf("%w: record %d has %d bytes, max_record_bytes is %d", ErrRecordTooLarge, i, n, p.cfg.MaxRecordBytes)
		}
		if p.cfg.Cleanup == CleanupCompact && r.Key == nil {
			return fmt.Errorf("%w: record %d has no key, and a compacted topic keeps records by key", ErrInvalidRecord, i)
		}
	}
	return nil
}

func (p *Partition) appendEncoded(buf []byte, info batchInfo) (int64, error) {
	p.mu.Lock()
	if p.failed != nil {
		err := p.failed
		p.mu.Unlock()
		putBuf(buf)
		return 0, err
	}
	if p.closed.Load() {
		p.mu.Unlock()
		putBuf(buf)
		return 0, fmt.Errorf("append to %s: %w", p, ErrClosed)
	}
	base := p.nextOffset
	binary.BigEndian.PutUint64(buf[offBaseOffset:], uint64(base))
	p.nextOffset += info.count
	p.pending = append(p.pending, pendingBatch{buf, p.nextOffset - 1})
	r := p.round
	p.mu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default: // the flusher is already due to run
	}
	<-r.done
	if r.err != nil {
		return 0, r.err
	}
	return base, nil
}

// flusher writes rounds of queued batches until the partition closes; it
// writes whatever is still queued before it stops.
func (p *Partition) flusher() {
	defer close(p.flusherDone)
	for {
		select {
		case <-p.kick:
		case <-p.stopFlusher:
			p.flushQueued()
			return
		}
		p.flushQueued()
	}
}

// awaitStragglers yields until want batches are queued or maxRoundDelay
// passes.
func (p *Partition) awaitStragglers(want int) {
	deadline := time.Now().Add(maxRoundDelay)
	for time.Now().Before(deadline) {
		p.mu.Lock()
		n := len(p.pending)
		p.mu.Unlock()
		if n >= want {
			return
		}
		runtime.Gosched()
	}
}

// flushQueued writes rounds until nothing is queued.
func (p *Partition) flushQueued() {
	for {
		p.mu.Lock()
		batches, r, failed := p.pending, p.round, p.failed
		if len(batches) == 0 {
			p.mu.Unlock()
			return
		}
		if n := len(batches); p.lastRound > 1 && n < p.lastRound && n < maxRoundBatches {
			// The appenders the last round woke are queueing their next
			// batches right now: wait for them, briefly, so they share this
			// round's fsync instead of paying for one more (PostgreSQL's
			// commit_delay, bounded by how many came last time). Without it,
			// concurrent appenders split into two cohorts that take turns.
			p.mu.Unlock()
			p.awaitStragglers(p.lastRound)
			p.mu.Lock()
			batches, r, failed = p.pending, p.round, p.failed
		}
		p.lastRound = len(batches)
		p.pending, p.round = nil, newRound()
		p.mu.Unlock()
		if failed != nil {
			r.err = failed
		} else {
			p.flushMu.Lock()
			err := p.writeBatchesLocked(batches)
			p.flushMu.Unlock()
			if err != nil {
				r.err = p.fail(fmt.Errorf("append to %s: %w", p, err))
			}
		}
		for _, b := range batches {
			putBuf(b.data)
		}
		close(r.done)
	}
}

// fail makes err the partition's sticky error: the appends queued and to
// come get it, until the log is reopened. It returns err marked with
// ErrPartitionFailed.
func (p *Partition) fail(err error) error {
	err = fmt.Errorf("%w: %w (the partition refuses appends until the log is reopened)", ErrPartitionFailed, err)
	p.mu.Lock()
	if p.failed == nil {
		p.failed, p.failedAt = err, p.clock()
	}
	p.mu.Unlock()
	p.log.Error("partition write failed; appends stopped", "err", err)
	return err
}

// PartitionFault is a partition that refuses appends after a disk error.
type PartitionFault struct {
	Topic     string    `json:"topic"`
	Partition int       `json:"partition"`
	Error     string    `json:"error"`
	Since     time.Time `json:"since"`
}

// fault reports the partition's sticky error, if it has one.
func (p *Partition) fault() (PartitionFault, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failed == nil {
		return PartitionFault{}, false
	}
	return PartitionFault{Topic: p.topic, Partition: p.id, Error: p.failed.Error(), Since: p.failedAt}, true
}

func (p *Partition) activeSegment() *segment {
	p.segsMu.RLock()
	defer p.segsMu.RUnlock()
	return p.segs[len(p.segs)-1]
}

// writeBatchesLocked writes queued batches to the active segment, rolling it on
// size or age, then syncs as the policy says and publishes the new high
// watermark. When a write or the sync fails, the active segment is cut back
// to where this round began in it, so that reopening finds no batch that
// was never acknowledged (a batch a roll already sealed may remain, as
// after a crash between the fsync and the acknowledgement). Called with
// flushMu held.
func (p *Partition) writeBatchesLocked(batches []pendingBatch) error {
	seg := p.activeSegment()
	start := seg.size.Load()
	err := p.writeRoundLocked(&seg, &start, batches)
	if err != nil && seg.size.Load() > start {
		if terr := p.disk.truncate(seg.f, start); terr != nil {
			p.log.Error("cannot cut the unacknowledged tail of a failed write; reopening the log recovers it", "segment", seg.path(logSuffix), "err", terr)
		} else {
			seg.size.Store(start)
		}
	}
	return err
}

// writeRoundLocked does writeBatchesLocked's work; seg and start follow a roll.
func (p *Partition) writeRoundLocked(seg **segment, start *int64, batches []pendingBatch) error {
	now := p.clock()
	pos := (*seg).size.Load()
	p.wbuf = p.wbuf[:0]
	writeBuf := func() error {
		if len(p.wbuf) == 0 {
			return nil
		}
		if err := p.writeAt(*seg, p.wbuf); err != nil {
			return err
		}
		p.wbuf = p.wbuf[:0]
		return nil
	}
	for _, b := range batches {
		if p.shouldRoll(*seg, pos, len(b.data), now) {
			if err := writeBuf(); err != nil {
				return err
			}
			next, err := p.roll(*seg)
			if err != nil {
				return err
			}
			*seg, pos, *start = next, 0, 0
		}
		h, err := ParseBatchHeader(b.data)
		if err != nil {
			return fmt.Errorf("own batch: %w", err) // cannot happen: we encoded it
		}
		(*seg).noteAppend(pos, &h, p.cfg.IndexIntervalBytes, now.UnixMilli())
		if len(b.data) >= directWriteBytes {
			if err := writeBuf(); err != nil {
				return err
			}
			if err := p.writeAt(*seg, b.data); err != nil {
				return err
			}
		} else {
			p.wbuf = append(p.wbuf, b.data...)
		}
		pos += int64(len(b.data))
	}
	if err := writeBuf(); err != nil {
		return err
	}
	if err := (*seg).writeIndexes(); err != nil {
		return err
	}
	if p.cfg.Fsync == FsyncAlways {
		if err := p.disk.fdatasync((*seg).f); err != nil {
			return fmt.Errorf("fsync segment %s: %w", (*seg).path(logSuffix), err)
		}
	} else {
		p.dirty = true
	}
	p.publishHW(batches[len(batches)-1].last + 1)
	return nil
}

func (p *Partition) writeAt(seg *segment, b []byte) error {
	pos := seg.size.Load()
	if err := p.disk.writeAt(seg.f, b, pos); err != nil {
		// Cut off whatever part was written so the file ends on a batch.
		p.disk.truncate(seg.f, pos)
		return fmt.Errorf("write segment %s at %d: %w", seg.path(logSuffix), pos, err)
	}
	seg.size.Add(int64(len(b)))
	return nil
}

func (p *Partition) shouldRoll(seg *segment, pos int64, n int, now time.Time) bool {
	if pos == 0 {
		return false
	}
	if pos+int64(n) > p.cfg.SegmentBytes {
		return true
	}
	rollTs := seg.rollTimestamp()
	return rollTs >= 0 && now.UnixMilli()-rollTs >= time.Duration(p.cfg.SegmentAge).Milliseconds()
}

// roll seals the active segment and starts a new one at the next offset.
func (p *Partition) roll(old *segment) (*segment, error) {
	if err := old.seal(p.cfg.Fsync != FsyncNever); err != nil {
		return nil, fmt.Errorf("roll segment: %w", err)
	}
	s, err := createSegment(p.disk, p.dir, old.nextOffset())
	if err != nil {
		return nil, fmt.Errorf("roll segment: %w", err)
	}
	p.segsMu.Lock()
	p.segs = append(p.segs, s)
	p.segsMu.Unlock()
	return s, nil
}

func (p *Partition) publishHW(hw int64) {
	p.hwMu.Lock()
	p.hw.Store(hw)
	close(p.hwCh)
	p.hwCh = make(chan struct{})
	p.hwMu.Unlock()
}

// Wait blocks until the high watermark passes offset, the context ends or
// the log closes. It is the long poll of a consumer at the end of the log.
func (p *Partition) Wait(ctx context.Context, offset int64) error {
	for {
		p.hwMu.Lock()
		ch := p.hwCh
		p.hwMu.Unlock()
		if p.hw.Load() > offset {
			return nil
		}
		if p.closed.Load() {
			return ErrClosed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// sync forces written data to disk; the fsync "interval" ticker calls it.
func (p *Partition) sync() error {
	p.flushMu.Lock()
	defer p.flushMu.Unlock()
	if !p.dirty {
		return nil
	}
	seg := p.activeSegment()
	if err := p.disk.fdatasync(seg.f); err != nil {
		// What was acknowledged since the last sync may not be on disk: no
		// more appends until a reopen has recovered what is.
		return p.fail(fmt.Errorf("sync %s: %w", p, err))
	}
	p.dirty = false
	return nil
}

func (p *Partition) close() error {
	// Set under mu: an append either queued before this (and the flusher
	// writes it before it stops) or sees closed and is refused.
	p.mu.Lock()
	already := p.closed.Swap(true)
	p.mu.Unlock()
	if already {
		return nil
	}
	close(p.stopFlusher)
	<-p.flusherDone
	p.flushMu.Lock()
	defer p.flushMu.Unlock()
	var errs []error
	seg := p.activeSegment()
	if err := seg.writeIndexes(); err != nil {
		errs = append(errs, err)
	}
	if p.dirty && p.cfg.Fsync != FsyncNever {
		if err := p.disk.fdatasync(seg.f); err != nil {
			errs = append(errs, fmt.Errorf("sync %s: %w", p, err))
		}
	}
	p.publishHW(p.hw.Load()) // wake waiters so they see ErrClosed
	p.closeSegments()
	return errors.Join(errs...)
}

func (p *Partition) closeSegments() {
	p.segsMu.Lock()
	defer p.segsMu.Unlock()
	for _, s := range p.segs {
		s.release()
	}
	p.segs = nil
}

// PartitionStats describes a partition's storage.
type PartitionStats struct {
	Partition      int   `json:"partition"`
	LogStartOffset int64 `json:"log_start_offset"`
	HighWatermark  int64 `json:"high_watermark"`
	Segments       int   `json:"segments"`
	Bytes          int64 `json:"bytes"`
	// RetentionHeldBytes is what retention would have deleted but keeps
	// for sinks that have not consumed it (retention_protects: sinks).
	RetentionHeldBytes int64 `json:"retention_held_bytes,omitempty"`
	// LocalStartOffset is the first offset in local segments (below it,
	// down to LogStartOffset, the archive holds them), and Archive what
	// the archive holds, for an archived topic.
	LocalStartOffset int64         `json:"local_start_offset"`
	Archive          *ArchiveStats `json:"archive,omitempty"`
	// Error is the disk error after which the partition refuses appends
	// (until the log is reopened), and FailedSince when it came.
	Error       string     `json:"error,omitempty"`
	FailedSince *time.Time `json:"failed_since,omitempty"`
}

// Stats reports the partition's offsets and size.
func (p *Partition) Stats() PartitionStats {
	st := PartitionStats{Partition: p.id, LogStartOffset: p.LogStartOffset(), LocalStartOffset: p.logStart.Load(), HighWatermark: p.hw.Load(), RetentionHeldBytes: p.retentionHeld.Load()}
	if a, ok := p.ArchiveStats(); ok {
		st.Archive = &a
	}
	if f, ok := p.fault(); ok {
		st.Error, st.FailedSince = f.Error, &f.Since
	}
	p.segsMu.RLock()
	defer p.segsMu.RUnlock()
	st.Segments = len(p.segs)
	for _, s := range p.segs {
		st.Bytes += s.size.Load()
	}
	return st
}
