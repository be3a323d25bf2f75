package log

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"
)

// ArchiveStore is where cold segments go: an object store (S3) or, for
// tests of the mechanism, a directory. Keys are slash-separated paths
// below the store's own prefix.
type ArchiveStore interface {
	// Put stores size bytes of body at key, durably when it returns; the
	// store checks them against sum (their SHA-256) where it can.
	Put(ctx context.Context, key string, body io.ReaderAt, size int64, sum [sha256.Size]byte) error
	// Stat reports the object at key as stored (its size and SHA-256), or
	// an error wrapping os.ErrNotExist.
	Stat(ctx context.Context, key string) (ObjectStat, error)
	// ReadAt reads len(p) bytes of key at off (fewer only at its end,
	// with io.EOF).
	ReadAt(ctx context.Context, key string, p []byte, off int64) (int, error)
	// OpenRange streams the n bytes of key at off (fewer only at its
	// end), in one request.
	OpenRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error)
	// Delete removes key; a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// String names the store in messages ("s3://bucket/prefix").
	String() string
}

// ObjectStat is what a store says of one object.
type ObjectStat struct {
	Size   int64
	SHA256 string // hex; empty when the store cannot tell
}

// ArchivePolicy is a topic's archive: which store, when a closed segment
// goes there, and how long the archive keeps it.
type ArchivePolicy struct {
	StoreName string
	Store     ArchiveStore
	// After is how old a closed segment's newest record must be before
	// the segment is archived.
	After time.Duration
	// Retention is how long the archive keeps a segment, by its newest
	// record (-1: forever).
	Retention time.Duration
	// LocalRetention and LocalRetentionBytes are how long, and up to what
	// size per partition, archived segments stay on local disk as well
	// (-1: no bound of that kind). A segment is deleted locally by them
	// only once it is archived.
	LocalRetention      time.Duration
	LocalRetentionBytes int64
}

// ArchivePolicies says, for a topic, its archive policy (ok false: the
// topic is not archived). eddy.yaml decides it, not topic.json, so a
// changed config applies to existing topics at the next start.
type ArchivePolicies func(topic string, cfg TopicConfig) (ArchivePolicy, bool)

// WithArchive sets the log's archive policies, and the bytes of archived
// segments its reads keep cached (0: 64 MiB). Default: nothing archived.
func WithArchive(fn ArchivePolicies, cacheBytes int64) Option {
	return func(o *options) {
		o.archive = fn
		if cacheBytes <= 0 {
			cacheBytes = 64 << 20
		}
		o.cache = newArchiveCache(cacheBytes)
	}
}

// ArchivedSegment is one segment in the archive, as a partition's
// manifest lists it.
type ArchivedSegment struct {
	Base         int64     `json:"base"`
	Last         int64     `json:"last"` // the offset before the next segment's base
	Key          string    `json:"key"`  // the .log object; .index and .timeindex beside it (none when Size is 0)
	Size         int64     `json:"size"`
	SHA256       string    `json:"sha256"`
	IndexSize    int64     `json:"index_size"`
	TimeSize     int64     `json:"timeindex_size"`
	MaxTimestamp int64     `json:"max_timestamp"` // ms
	Archived     time.Time `json:"archived"`
}

// manifest is what the archive holds of one partition. It is written to
// the store after the segments it lists are stored and verified, and
// kept beside the partition's segments (archive.json) once it is durable
// there: local copies are deleted only for segments the local copy lists.
type manifest struct {
	Topic     string            `json:"topic"`
	Partition int               `json:"partition"`
	Segments  []ArchivedSegment `json:"segments"` // by base
	// CompactedTo is the high watermark of the archive's last compaction
	// (of a compacted topic): no archived record is superseded by a
	// record below it. CompactedAt is when that was, and TombstonesKept
	// whether it kept tombstones that will expire.
	CompactedTo    int64     `json:"compacted_to,omitempty"`
	CompactedAt    time.Time `json:"compacted_at,omitzero"`
	TombstonesKept bool      `json:"tombstones_kept,omitempty"`
	// Garbage are objects of segments compaction replaced, deleted by the
	// next run (a reader may still be reading them now).
	Garbage []string `json:"garbage,omitempty"`
}

const (
	manifestFile   = "archive.json"
	manifestObject = "manifest.json"
)

func (m *manifest) encode() []byte {
	b, _ := json.MarshalIndent(m, "", "  ")
	return append(b, '\n')
}

// end is the offset after the archived range (0 when empty).
func (m *manifest) end() int64 {
	if len(m.Segments) == 0 {
		return 0
	}
	return m.Segments[len(m.Segments)-1].Last + 1
}

// find returns the archived segment holding offset.
func (m *manifest) find(offset int64) (ArchivedSegment, bool) {
	i := sort.Search(len(m.Segments), func(i int) bool { return m.Segments[i].Last >= offset })
	if i == len(m.Segments) || m.Segments[i].Base > offset {
		return ArchivedSegment{}, false
	}
	return m.Segments[i], true
}

// archivePrefix is where a partition's objects live in its store.
func archivePrefix(topic string, partition int) string {
	return topic + "/" + strconv.Itoa(partition) + "/"
}

// archivePolicy is the partition's archive policy, if it has one.
func (p *Partition) archivePolicy() (ArchivePolicy, bool) {
	if p.archive == nil {
		return ArchivePolicy{}, false
	}
	return p.archive(p.topic, p.cfg)
}

// openManifest reads archive.json, if the partition has one.
func (p *Partition) openManifest() error {
	path := filepath.Join(p.dir, manifestFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("archive manifest: %w", err)
	}
	m := &manifest{}
	if err := json.Unmarshal(b, m); err != nil {
		return fmt.Errorf("archive manifest %s: %w", path, err)
	}
	p.manifest.Store(m)
	return nil
}

// loadManifestLocked makes sure the partition has its manifest: the one
// of archive.json, else the store's copy (a data directory rebuilt, or a
// crash between the two writes), else an empty one. Called with archMu
// held.
func (p *Partition) loadManifestLocked(ctx context.Context, store ArchiveStore) (*manifest, error) {
	if m := p.manifest.Load(); m != nil {
		return m, nil
	}
	m, err := readManifest(ctx, store, p.topic, p.id)
	if err != nil {
		return nil, err
	}
	if m == nil {
		m = &manifest{Topic: p.topic, Partition: p.id}
	}
	p.manifest.Store(m)
	return m, nil
}

// readManifest reads a partition's manifest from store; nil when there
// is none.
func readManifest(ctx context.Context, store ArchiveStore, topic string, partition int) (*manifest, error) {
	key := archivePrefix(topic, partition) + manifestObject
	st, err := store.Stat(ctx, key)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("archive %s: read %s: %w", store, key, err)
	}
	b := make([]byte, st.Size)
	if _, err := store.ReadAt(ctx, key, b, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("archive %s: read %s: %w", store, key, err)
	}
	if st.SHA256 != "" {
		if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != st.SHA256 {
			return nil, fmt.Errorf("archive %s: %s does not match its checksum", store, key)
		}
	}
	m := &manifest{}
	if err := json.Unmarshal(b, m); err != nil {
		return nil, fmt.Errorf("archive %s: %s: %w", store, key, err)
	}
	return m, nil
}

// ArchiveRun says what one archive pass of a partition did.
type ArchiveRun struct {
	Segments int
	Bytes    int64
}

// Archive uploads the partition's closed segments whose newest record is
// older than the policy's After, in order, each with its indexes: every
// object is stored and verified (its size and SHA-256 as the store
// reports them), then the manifest naming it is stored, then written
// beside the segments. Only then may local retention delete the
// segment. A pass that fails leaves what it finished recorded; the next
// pass goes on from there. Of a compacted topic it compacts first (see
// compactForArchiveLocked).
func (p *Partition) Archive(ctx context.Context) (ArchiveRun, error) {
	var run ArchiveRun
	pol, ok := p.archivePolicy()
	if !ok {
		return run, nil
	}
	p.archMu.Lock()
	defer p.archMu.Unlock()
	if _, err := p.loadManifestLocked(ctx, pol.Store); err != nil {
		return run, err
	}
	if err := p.storeTopicMetaLocked(ctx, pol.Store); err != nil {
		return run, err
	}
	now := p.clock()
	var compactErr error // reported, but cleaned or not the segments go
	if p.cfg.Cleanup == CleanupCompact {
		compactErr = p.compactForArchiveLocked(ctx, &pol, now)
	}
	for {
		if err := ctx.Err(); err != nil {
			return run, errors.Join(compactErr, err)
		}
		snap, ok, err := p.nextToArchive(now, pol.After)
		if err != nil {
			return run, errors.Join(compactErr, err)
		}
		if !ok {
			return run, errors.Join(compactErr, p.expireLocked(ctx, &pol, now))
		}
		entry, err := p.upload(ctx, pol.Store, snap, now)
		snap.close()
		if err != nil {
			return run, errors.Join(compactErr, err)
		}
		m := *p.manifest.Load()
		m.Segments = append(append([]ArchivedSegment(nil), m.Segments...), entry)
		if err := p.storeManifestLocked(ctx, pol.Store, &m); err != nil {
			return run, errors.Join(compactErr, err)
		}
		run.Segments++
		run.Bytes += entry.Size + entry.IndexSize + entry.TimeSize
		p.log.Info("segment archived", "store", pol.Store.String(), "base", entry.Base, "last", entry.Last, "bytes", entry.Size)
	}
}

// storeManifestLocked stores m in the store, then beside the segments,
// and makes it the partition's.
func (p *Partition) storeManifestLocked(ctx context.Context, store ArchiveStore, m *manifest) error {
	b := m.encode()
	key := archivePrefix(p.topic, p.id) + manifestObject
	if err := store.Put(ctx, key, bytes.NewReader(b), int64(len(b)), sha256.Sum256(b)); err != nil {
		return fmt.Errorf("archive %s: store %s: %w", store, key, err)
	}
	if err := p.disk.writeFileSync(filepath.Join(p.dir, manifestFile), b); err != nil {
		return fmt.Errorf("archive manifest of %s: %w", p, err)
	}
	p.manifest.Store(m)
	return nil
}

// segmentSnapshot is a segment to upload: a closed local segment held
// open (its own file handle: compaction may rename a new file over the
// name meanwhile, retention may unlink it) with its indexes as they were,
// or an archived one compaction rewrote.
type segmentSnapshot struct {
	base, last int64
	body       io.ReaderAt
	size       int64
	index      []byte
	times      []byte
	maxTs      int64
	f          *os.File // of a local segment
}

func (s *segmentSnapshot) close() {
	if s.f != nil {
		s.f.Close()
	}
}

// nextToArchive snapshots the first closed segment past the manifest's
// end, when it is old enough.
func (p *Partition) nextToArchive(now time.Time, after time.Duration) (*segmentSnapshot, bool, error) {
	p.cleanMu.Lock() // no compaction swaps the file while it is opened
	defer p.cleanMu.Unlock()
	p.segsMu.RLock()
	segs := append([]*segment(nil), p.segs...)
	p.segsMu.RUnlock()
	end := p.manifest.Load().end()
	for i, s := range segs[:len(segs)-1] {
		next := segs[i+1].base
		if next <= end {
			continue // archived
		}
		if now.UnixMilli()-s.maxTimestamp() < after.Milliseconds() {
			return nil, false, nil
		}
		f, err := os.Open(s.path(logSuffix))
		if err != nil {
			return nil, false, fmt.Errorf("archive %s: open segment: %w", p, err)
		}
		snap := &segmentSnapshot{base: s.base, last: next - 1, body: f, f: f, size: s.size.Load()}
		s.mu.RLock()
		snap.index, snap.times = encodeIndexes(s.index, s.times)
		snap.maxTs = s.maxTs
		s.mu.RUnlock()
		return snap, true, nil
	}
	return nil, false, nil
}

// upload stores a segment's three objects and verifies each.
func (p *Partition) upload(ctx context.Context, store ArchiveStore, snap *segmentSnapshot, now time.Time) (ArchivedSegment, error) {
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(snap.body, 0, snap.size)); err != nil {
		return ArchivedSegment{}, fmt.Errorf("archive %s: read segment %s: %w", p, segmentName(snap.base), err)
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	hexSum := hex.EncodeToString(sum[:])
	name := fmt.Sprintf("%s%s-%s-%s", archivePrefix(p.topic, p.id), segmentName(snap.base), segmentName(snap.last), hexSum[:12])
	e := ArchivedSegment{Base: snap.base, Last: snap.last, Key: name + logSuffix, Size: snap.size, SHA256: hexSum,
		IndexSize: int64(len(snap.index)), TimeSize: int64(len(snap.times)), MaxTimestamp: snap.maxTs, Archived: now.UTC()}
	objs := []struct {
		key  string
		body io.ReaderAt
		size int64
		sum  [sha256.Size]byte
	}{
		{name + indexSuffix, bytes.NewReader(snap.index), int64(len(snap.index)), sha256.Sum256(snap.index)},
		{name + timeIndexSuffix, bytes.NewReader(snap.times), int64(len(snap.times)), sha256.Sum256(snap.times)},
		{e.Key, snap.body, snap.size, sum}, // last: its presence means the segment is whole
	}
	if snap.size == 0 {
		// Compaction emptied it: an entry that keeps the offsets
		// contiguous, and no objects.
		e.IndexSize, e.TimeSize = 0, 0
		return e, nil
	}
	for _, o := range objs {
		if err := store.Put(ctx, o.key, o.body, o.size, o.sum); err != nil {
			return e, fmt.Errorf("archive %s: store %s: %w", store, o.key, err)
		}
		st, err := store.Stat(ctx, o.key)
		if err != nil {
			return e, fmt.Errorf("archive %s: verify %s: %w", store, o.key, err)
		}
		if want := hex.EncodeToString(o.sum[:]); st.Size != o.size || (st.SHA256 != "" && st.SHA256 != want) {
			return e, fmt.Errorf("archive %s: verify %s: the store holds %d bytes (sha256 %q), %d were sent (sha256 %s)", store, o.key, st.Size, st.SHA256, o.size, want)
		}
	}
	return e, nil
}

// ArchiveStats is what a partition's archive holds.
type ArchiveStats struct {
	Store    string `json:"store"`
	Start    int64  `json:"start"` // first archived offset
	End      int64  `json:"end"`   // offset after the last archived one
	Segments int    `json:"segments"`
	Bytes    int64  `json:"bytes"`
	// PendingSegments are closed local segments not yet archived, and
	// OldestPendingMs the newest-record time of the oldest of them (the
	// upload lag), 0 when none.
	PendingSegments int   `json:"pending_segments"`
	OldestPendingMs int64 `json:"oldest_pending_ms,omitempty"`
	// WaitingBytes are local bytes past local_retention that stay until
	// the archive holds them (the store down, or refusing).
	WaitingBytes int64 `json:"waiting_bytes,omitempty"`
}

// ArchiveStats reports the partition's archive as its manifest says
// (nothing before the first archive pass has read it); ok is false for a
// topic that is not archived.
func (p *Partition) ArchiveStats() (ArchiveStats, bool) {
	pol, ok := p.archivePolicy()
	if !ok {
		return ArchiveStats{}, false
	}
	m := p.manifest.Load()
	if m == nil {
		m = &manifest{}
	}
	st := ArchiveStats{Store: pol.StoreName, End: m.end(), Segments: len(m.Segments), WaitingBytes: p.archiveWaiting.Load()}
	if len(m.Segments) > 0 {
		st.Start = m.Segments[0].Base
	}
	for _, s := range m.Segments {
		st.Bytes += s.Size + s.IndexSize + s.TimeSize
	}
	p.segsMu.RLock()
	segs := append([]*segment(nil), p.segs...)
	p.segsMu.RUnlock()
	for i, s := range segs[:len(segs)-1] {
		if segs[i+1].base > st.End {
			if st.PendingSegments == 0 {
				st.OldestPendingMs = s.maxTimestamp()
			}
			st.PendingSegments++
		}
	}
	return st, true
}

// archivedDrop is how many of the oldest closed segments local retention
// deletes for an archived topic: those the archive holds, by the
// policy's local bounds. A segment the bounds would delete but that is
// not archived yet stays, with a warning (once an episode), until an
// archive pass has stored it.
func (p *Partition) archivedDrop(segs []*segment, pol *ArchivePolicy, now int64) int {
	closed := segs[:len(segs)-1]
	want := 0
	if pol.LocalRetention >= 0 {
		for want < len(closed) && now-closed[want].maxTimestamp() > pol.LocalRetention.Milliseconds() {
			want++
		}
	}
	if pol.LocalRetentionBytes >= 0 {
		var total int64
		for _, s := range segs[want:] {
			total += s.size.Load()
		}
		for want < len(closed) && total-closed[want].size.Load() >= pol.LocalRetentionBytes {
			total -= closed[want].size.Load()
			want++
		}
	}
	end := int64(0)
	if m := p.manifest.Load(); m != nil {
		end = m.end()
	}
	drop := 0
	for drop < want && segs[drop+1].base <= end {
		drop++
	}
	var waiting int64
	for _, s := range closed[drop:want] {
		waiting += s.size.Load()
	}
	p.archiveWaiting.Store(waiting)
	if waiting > 0 && !p.archiveWarned {
		p.archiveWarned = true
		p.log.Warn("local retention waits for the archive: segments past local_retention are not archived yet", "segments", want-drop, "bytes", waiting, "store", pol.StoreName)
	} else if waiting == 0 {
		p.archiveWarned = false
	}
	return drop
}

// expireLocked drops from the archive the segments past its retention
// that are no longer held locally: the manifest first, then the objects
// (a crash between leaves objects no manifest names, never the reverse).
func (p *Partition) expireLocked(ctx context.Context, pol *ArchivePolicy, now time.Time) error {
	m := p.manifest.Load()
	if pol.Retention < 0 || len(m.Segments) == 0 {
		return nil
	}
	n := 0
	for n < len(m.Segments) && now.UnixMilli()-m.Segments[n].MaxTimestamp > pol.Retention.Milliseconds() &&
		m.Segments[n].Last < p.logStart.Load() {
		n++
	}
	if n == 0 {
		return nil
	}
	gone := m.Segments[:n]
	next := *m
	next.Segments = append([]ArchivedSegment(nil), m.Segments[n:]...)
	if err := p.storeManifestLocked(ctx, pol.Store, &next); err != nil {
		return err
	}
	var errs []error
	for _, s := range gone {
		for _, k := range []string{s.Key, indexKey(s.Key), timeIndexKey(s.Key)} {
			if err := pol.Store.Delete(ctx, k); err != nil {
				errs = append(errs, err)
			}
		}
	}
	p.log.Info("archive retention deleted segments", "store", pol.StoreName, "segments", n, "start", p.LogStartOffset())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("archive %s: retention: %w", pol.Store, err)
	}
	return nil
}

func timeIndexKey(logKey string) string { return logKey[:len(logKey)-len(logSuffix)] + timeIndexSuffix }

// storeTopicMetaLocked stores the topic's name and config beside its
// partitions' objects (<topic>/topic.json), once a process, so that the
// archive alone can rebuild the topic.
func (p *Partition) storeTopicMetaLocked(ctx context.Context, store ArchiveStore) error {
	if p.metaArchived {
		return nil
	}
	b := topicMeta{Name: p.topic, Config: p.cfg}.encode()
	key := p.topic + "/" + topicMetaFile
	if err := store.Put(ctx, key, bytes.NewReader(b), int64(len(b)), sha256.Sum256(b)); err != nil {
		return fmt.Errorf("archive %s: store %s: %w", store, key, err)
	}
	p.metaArchived = true
	return nil
}

// RestoreTopic rebuilds a topic that is in store's archive but not in
// this log (a new machine, an emptied data directory): its config from
// the archive's topic.json, and each partition with the archive's
// manifest beside an empty active segment at the archive's end, so every
// archived record reads as before (through the archive) and appends go
// on after them. The log's archive policies must send the topic to store
// for the reads to find it.
func (l *Log) RestoreTopic(ctx context.Context, name string, store ArchiveStore) (*Topic, error) {
	if err := ValidateTopicName(name); err != nil {
		return nil, fmt.Errorf("restore topic: %w", err)
	}
	key := name + "/" + topicMetaFile
	st, err := store.Stat(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("restore topic %s from %s: %w", name, store, err)
	}
	b := make([]byte, st.Size)
	if _, err := store.ReadAt(ctx, key, b, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("restore topic %s from %s: %w", name, store, err)
	}
	m, err := decodeTopicMeta(b)
	if err != nil || m.Name != name {
		return nil, fmt.Errorf("restore topic %s from %s: %s is not this topic's config (%v)", name, store, key, err)
	}
	m.Config = m.Config.withDefaults(l.opts.defaults)
	if err := m.Config.Validate(); err != nil {
		return nil, fmt.Errorf("restore topic %s: %w", name, err)
	}
	if l.opts.archive == nil {
		return nil, fmt.Errorf("restore topic %s: no archive is configured, so its archived records could not be read", name)
	}
	if pol, ok := l.opts.archive(name, m.Config); !ok || pol.Store != store {
		return nil, fmt.Errorf("restore topic %s: the config does not archive it to %s (set its archive store), so its archived records could not be read", name, store)
	}
	manifests := make([]*manifest, m.Config.Partitions)
	for i := range manifests {
		mf, err := readManifest(ctx, store, name, i)
		if err != nil {
			return nil, fmt.Errorf("restore topic %s: %w", name, err)
		}
		if mf == nil {
			mf = &manifest{Topic: name, Partition: i}
		}
		manifests[i] = mf
	}
	return l.addTopic("restore", m, func(path string) error {
		for i, mf := range manifests {
			dir := filepath.Join(path, strconv.Itoa(i))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			if err := l.opts.disk.writeFileSync(filepath.Join(dir, manifestFile), mf.encode()); err != nil {
				return err
			}
			if err := l.opts.disk.writeFileSync(filepath.Join(dir, segmentName(mf.end())+logSuffix), nil); err != nil {
				return err
			}
		}
		return nil
	})
}
