package log

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// archiveTo is a policy that archives every topic to store.
func archiveTo(store ArchiveStore, after, local time.Duration) Option {
	return WithArchive(func(string, TopicConfig) (ArchivePolicy, bool) {
		return ArchivePolicy{StoreName: "test", Store: store, After: after, Retention: -1, LocalRetention: local, LocalRetentionBytes: -1}, true
	}, 4<<20)
}

// Produce, archive, drop the local copies, and read every record once,
// in order, from the start, by time too; reopen and read again.
func TestArchiveThenReadBelowTheLocalStart(t *testing.T) {
	clk := newTestClock()
	store, err := NewDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	l := openTest(t, dir, WithClock(clk.Now), archiveTo(store, time.Hour, 2*time.Hour))
	p := part(t, createTopic(t, l, "t", TopicConfig{SegmentBytes: 2048, Retention: Duration(24 * time.Hour)}), 0)
	var want []string
	for i := range 300 {
		v := fmt.Sprintf("%04d-%s", i, "padding-padding-padding-padding-padding")
		want = append(want, v)
		appendValues(t, p, v)
		clk.Advance(time.Minute)
	}
	segs := p.Stats().Segments
	// Not old enough yet: nothing goes, and local retention keeps all.
	clk.Advance(-4 * time.Hour)
	if run, err := p.Archive(context.Background()); err != nil || run.Segments != 0 {
		t.Fatalf("archive of young segments: %+v, %v", run, err)
	}
	clk.Advance(4 * time.Hour)
	// Past local_retention but not archived: local retention waits.
	if n, err := p.ApplyRetention(); err != nil || n != 0 {
		t.Fatalf("retention deleted %d unarchived segments: %v", n, err)
	}
	if p.archiveWaiting.Load() == 0 {
		t.Fatal("no bytes reported as waiting for the archive")
	}
	run, err := p.Archive(context.Background())
	if err != nil || run.Segments == 0 {
		t.Fatalf("archive: %+v, %v", run, err)
	}
	if _, err := store.Stat(context.Background(), "t/topic.json"); err != nil {
		t.Fatalf("the topic's config is not in the archive: %v", err)
	}
	st, ok := p.ArchiveStats()
	if !ok || st.Start != 0 || st.Segments != run.Segments || st.PendingSegments == 0 {
		t.Fatalf("archive stats %+v (of %d segments)", st, segs)
	}
	n, err := p.ApplyRetention()
	if err != nil || n == 0 {
		t.Fatalf("retention after the archive deleted %d: %v", n, err)
	}
	if p.LocalStartOffset() == 0 || p.LogStartOffset() != 0 {
		t.Fatalf("local start %d, log start %d", p.LocalStartOffset(), p.LogStartOffset())
	}
	check := func(p *Partition) {
		t.Helper()
		if got := values(readAll(t, p, p.LogStartOffset())); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("read %d records from the start, want %d", len(got), len(want))
		}
		// By time: record i was stamped i minutes after the start.
		for _, i := range []int64{0, 7, p.LocalStartOffset() - 1, p.LocalStartOffset(), 299} {
			off, ok, err := p.OffsetForTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Minute))
			if err != nil || !ok || off != i {
				t.Fatalf("offset for the time of %d: %d %v %v", i, off, ok, err)
			}
		}
	}
	check(p)
	l.Close()
	l = openTest(t, dir, WithClock(clk.Now), archiveTo(store, time.Hour, 2*time.Hour))
	defer l.Close()
	tp, _ := l.Topic("t")
	check(part(t, tp, 0))
	hits := l.ArchiveCacheStats()
	if hits.Misses == 0 || hits.Hits == 0 {
		t.Fatalf("cache %+v", hits)
	}
}

// A corrupt archived segment is never served: the fetch fails, naming
// the store and the segment.
func TestCorruptArchivedSegmentIsNotServed(t *testing.T) {
	clk := newTestClock()
	sdir := t.TempDir()
	store, _ := NewDirStore(sdir)
	l := openTest(t, t.TempDir(), WithClock(clk.Now), archiveTo(store, 0, 0))
	defer l.Close()
	p := part(t, createTopic(t, l, "t", TopicConfig{SegmentBytes: 1024}), 0)
	for i := range 50 {
		appendValues(t, p, fmt.Sprintf("%04d-%s", i, "padding-padding-padding-padding-padding"))
		clk.Advance(time.Second)
	}
	if _, err := p.Archive(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := p.ApplyRetention(); err != nil || p.LocalStartOffset() == 0 {
		t.Fatalf("local start %d: %v", p.LocalStartOffset(), err)
	}
	key := p.manifest.Load().Segments[0].Key
	path := filepath.Join(sdir, filepath.FromSlash(key))
	b, _ := os.ReadFile(path)
	b[BatchHeaderSize+5] ^= 0xff // in the first batch's records
	os.WriteFile(path, b, 0o644)
	_, err := p.Fetch(0, 1<<20)
	t.Log(err)
	if !errors.Is(err, ErrCorruptBatch) || !strings.Contains(err.Error(), store.String()) || !strings.Contains(err.Error(), key) {
		t.Fatalf("fetch of a corrupt archived segment: %v", err)
	}
}

// A topic rebuilt from the archive on an empty data directory: its config
// and every archived record, at their offsets; appends go on after them.
func TestRestoreTopicFromTheArchive(t *testing.T) {
	clk := newTestClock()
	store, _ := NewDirStore(t.TempDir())
	l := openTest(t, t.TempDir(), WithClock(clk.Now), archiveTo(store, 0, time.Hour))
	// Partitions 0 and 1 take records of several shapes (unicode, large
	// values, headers, tombstones); partition 2 stays empty.
	tp := createTopic(t, l, "t", TopicConfig{Partitions: 3, SegmentBytes: 1024, Cleanup: CleanupCompact})
	for i := range 400 {
		r := Record{Key: []byte(fmt.Sprintf("k%d", i%13)), Value: []byte(fmt.Sprintf("v%04d-%s", i, strings.Repeat("żółw-", i%7)))}
		switch {
		case i%29 == 0:
			r.Value = nil // a tombstone, kept within delete_retention
		case i%31 == 0:
			r.Value = []byte(strings.Repeat("L", 3000)) // larger than a segment
		}
		if i%5 == 0 {
			r.Headers = []Header{{Key: "trace", Value: []byte(fmt.Sprint(i))}, {Key: "empty"}}
		}
		if _, _, err := part(t, tp, i%2).Append(context.Background(), []Record{r}); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Second)
	}
	show := func(r Record) string { return fmt.Sprintf("%d:%q:%q:%v", r.Offset, r.Key, r.Value, r.Headers) }
	var ends [3]int64
	var wants [3][]string
	for i := range 3 {
		p := part(t, tp, i)
		if _, err := p.Compact(); err != nil {
			t.Fatal(err)
		}
		if _, err := p.Archive(context.Background()); err != nil {
			t.Fatal(err)
		}
		ends[i] = p.manifest.Load().end()
		for _, r := range readAll(t, p, 0) {
			if r.Offset < ends[i] {
				wants[i] = append(wants[i], show(r))
			}
		}
	}
	l.Close()
	fresh := openTest(t, t.TempDir(), WithClock(clk.Now), archiveTo(store, 0, time.Hour))
	defer fresh.Close()
	if _, err := fresh.RestoreTopic(context.Background(), "nope", store); err == nil {
		t.Fatal("a topic the archive does not hold was restored")
	}
	rt, err := fresh.RestoreTopic(context.Background(), "t", store)
	if err != nil {
		t.Fatal(err)
	}
	if ends[2] != 0 || len(wants[0]) == 0 || len(wants[1]) == 0 {
		t.Fatalf("archived ends %v", ends)
	}
	if rt.Partitions() != 3 || rt.Config().Cleanup != CleanupCompact || rt.Config().SegmentBytes != 1024 {
		t.Fatalf("restored config %+v", rt.Config())
	}
	for i := range 3 {
		p := part(t, rt, i)
		if p.LogStartOffset() != 0 || p.HighWatermark() != ends[i] {
			t.Fatalf("partition %d: log start %d, high watermark %d, want 0 and %d", i, p.LogStartOffset(), p.HighWatermark(), ends[i])
		}
		var got []string
		for _, r := range readAll(t, p, 0) {
			got = append(got, show(r))
		}
		if fmt.Sprint(got) != fmt.Sprint(wants[i]) {
			t.Fatalf("partition %d: restored %d records, want %d", i, len(got), len(wants[i]))
		}
		if first, _, err := p.Append(context.Background(), []Record{{Key: []byte("k"), Value: []byte("after")}}); err != nil || first != ends[i] {
			t.Fatalf("append after the restore at %d: %v", first, err)
		}
	}
	if _, err := fresh.RestoreTopic(context.Background(), "t", store); !errors.Is(err, ErrTopicExists) {
		t.Fatalf("a second restore: %v", err)
	}
}

// A compacted topic, archived: the archive run compacts before it
// uploads, and compacts the archive itself once enough is new; a
// tombstone goes from the archive after delete_retention, and from the
// local segments only once the archive no longer holds the values it
// deletes; replaced objects go at the next run; a restored topic holds
// the latest value of every key, and none of a deleted one.
func TestCompactedTopicArchived(t *testing.T) {
	ctx := context.Background()
	clk := newTestClock()
	sdir := t.TempDir()
	store, _ := NewDirStore(sdir)
	// Local copies stay a day: the local segments and the archive overlap.
	opt := archiveTo(store, 0, 24*time.Hour)
	l := openTest(t, t.TempDir(), WithClock(clk.Now), opt)
	p := part(t, createTopic(t, l, "t", TopicConfig{SegmentBytes: 1024, Cleanup: CleanupCompact, DeleteRetention: Duration(time.Hour)}), 0)
	want := map[string]string{}
	put := func(k string, v *string) {
		t.Helper()
		r := Record{Key: []byte(k)}
		if v != nil {
			r.Value = []byte(*v)
			want[k] = *v
		} else {
			delete(want, k)
		}
		if _, _, err := p.Append(ctx, []Record{r}); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Second)
	}
	str := func(s string) *string { return &s }
	for round := range 3 {
		for i := range 20 {
			put(fmt.Sprintf("k%02d", i), str(fmt.Sprintf("r%d-%s", round, strings.Repeat("ü", 30+i))))
		}
	}
	put("k03", nil)
	put("k05", nil)
	put("roll", str(strings.Repeat("x", 1200))) // closes the segment the tombstones are in
	put("roll", str("active"))
	// The first run: the archive holds nothing yet, so the local segments
	// are compacted in full and archived cleaned.
	if _, err := p.Archive(ctx); err != nil {
		t.Fatal(err)
	}
	m := p.manifest.Load()
	if len(m.Segments) == 0 || m.CompactedTo != 0 {
		t.Fatalf("first run: manifest %+v", m)
	}
	// latestOnce reads the partition from its start and checks that no
	// key below upTo appears twice, and returns the last value of each.
	latestOnce := func(p *Partition, upTo int64) (map[string]string, int) {
		t.Helper()
		seen := map[string]int64{}
		last := map[string]string{}
		tombs := 0
		for _, r := range readAll(t, p, p.LogStartOffset()) {
			if prev, dup := seen[string(r.Key)]; dup && r.Offset < upTo {
				t.Fatalf("key %q at %d and %d, below %d", r.Key, prev, r.Offset, upTo)
			}
			seen[string(r.Key)] = r.Offset
			if r.Value == nil {
				tombs++
				delete(last, string(r.Key))
			} else {
				last[string(r.Key)] = string(r.Value)
			}
		}
		return last, tombs
	}
	if got, tombs := latestOnce(p, p.hw.Load()-1); fmt.Sprint(got) != fmt.Sprint(want) || tombs != 2 {
		t.Fatalf("after the first run: %d tombstones, %v", tombs, got)
	}
	// New versions of half the keys, and a tombstone for a key whose
	// older values are archived.
	for i := 6; i < 16; i++ {
		put(fmt.Sprintf("k%02d", i), str(fmt.Sprintf("r3-%d", i)))
	}
	put("k12", nil)
	put("roll", str(strings.Repeat("y", 1200)))
	put("roll", str("active"))
	// Past delete_retention, a local pass keeps every tombstone: the
	// archive still holds values they delete.
	clk.Advance(2 * time.Hour)
	if _, err := p.Compact(); err != nil {
		t.Fatal(err)
	}
	if _, tombs := latestOnce(p, 0); tombs != 3 {
		t.Fatalf("a local pass left %d tombstones, want 3", tombs)
	}
	// The second run: half the offsets are new, so the whole partition is
	// compacted; the expired tombstones go from the archive and the local
	// segments at once.
	before := p.manifest.Load()
	if _, err := p.Archive(ctx); err != nil {
		t.Fatal(err)
	}
	m = p.manifest.Load()
	if m.CompactedTo == 0 || len(m.Garbage) == 0 || m.TombstonesKept {
		t.Fatalf("second run: compacted to %d, garbage %d, tombstones kept %v", m.CompactedTo, len(m.Garbage), m.TombstonesKept)
	}
	got, tombs := latestOnce(p, m.CompactedTo)
	if fmt.Sprint(got) != fmt.Sprint(want) || tombs != 0 {
		t.Fatalf("after the archive's compaction: %d tombstones, %v, want %v", tombs, got, want)
	}
	// The replaced objects stay for readers until the next run.
	old := m.Garbage[0]
	if !strings.Contains(fmt.Sprint(before.Segments), old) {
		t.Fatalf("garbage %s was not archived before", old)
	}
	if _, err := os.Stat(filepath.Join(sdir, filepath.FromSlash(old))); err != nil {
		t.Fatalf("a replaced object went at once: %v", err)
	}
	if _, err := p.Archive(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(sdir, filepath.FromSlash(old))); !errors.Is(err, os.ErrNotExist) || len(p.manifest.Load().Garbage) != 0 {
		t.Fatalf("a replaced object is still there after the next run: %v", err)
	}
	// A tombstone archived within delete_retention stays there until a
	// compaction after it: too little is new for one by the dirty ratio,
	// so it comes delete_retention after the last.
	put("k15", nil)
	put("roll", str(strings.Repeat("z", 1200)))
	put("roll", str("active"))
	if _, err := p.Archive(ctx); err != nil {
		t.Fatal(err)
	}
	if _, tombs := latestOnce(p, 0); tombs != 1 || p.manifest.Load().CompactedTo != m.CompactedTo {
		t.Fatalf("a young tombstone: %d tombstones, compacted to %d", tombs, p.manifest.Load().CompactedTo)
	}
	clk.Advance(2 * time.Hour)
	if _, err := p.Archive(ctx); err != nil {
		t.Fatal(err)
	}
	m = p.manifest.Load()
	if got, tombs := latestOnce(p, m.CompactedTo); tombs != 0 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after delete_retention: %d tombstones, %v", tombs, got)
	}
	// Only the archive serves the start now.
	clk.Advance(25 * time.Hour)
	if _, err := p.ApplyRetention(); err != nil || p.LocalStartOffset() == 0 {
		t.Fatalf("local start %d: %v", p.LocalStartOffset(), err)
	}
	if got, _ := latestOnce(p, m.CompactedTo); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("from the archive: %v, want %v", got, want)
	}
	l.Close()
	fresh := openTest(t, t.TempDir(), WithClock(clk.Now), opt)
	defer fresh.Close()
	rt, err := fresh.RestoreTopic(ctx, "t", store)
	if err != nil {
		t.Fatal(err)
	}
	// The restored topic ends where the archive does: the active segment
	// ("roll": "active") was never archived.
	delete(want, "roll")
	got, _ = latestOnce(part(t, rt, 0), m.CompactedTo)
	if got["roll"] != "" {
		delete(got, "roll")
	}
	if fmt.Sprint(got) != fmt.Sprint(want) || len(got) != 16 {
		t.Fatalf("restored: %v, want %v", got, want)
	}
}

// Archived segments of many chunks, read through caches of several sizes
// (runs of several chunks; one chunk at a time with the next evicting it)
// by readers at once, from the start and from offsets here and there:
// every record at its offset, each read once per fetch.
func TestArchivedReadsInRunsOfChunks(t *testing.T) {
	store, _ := NewDirStore(t.TempDir())
	dir := t.TempDir()
	clk := newTestClock()
	l := openTest(t, dir, WithClock(clk.Now), archiveTo(store, 0, 0))
	p := part(t, createTopic(t, l, "t", TopicConfig{SegmentBytes: 9 << 20, Fsync: FsyncNever}), 0)
	value := func(off int64) string {
		return fmt.Sprintf("%08d-%s", off, strings.Repeat(string(rune('a'+off%26)), 500+int(off%1500)))
	}
	for off := int64(0); off < 30_000; off += 100 {
		vals := make([]string, 100)
		for i := range vals {
			vals[i] = value(off + int64(i))
		}
		appendValues(t, p, vals...)
	}
	clk.Advance(time.Second)
	if _, err := p.Archive(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := p.ApplyRetention(); err != nil {
		t.Fatal(err)
	}
	archived := p.LocalStartOffset()
	if got := p.Stats().Archive.Segments; got < 2 || archived < 10_000 {
		t.Fatalf("%d segments archived, local start %d", got, archived)
	}
	l.Close()
	for _, cache := range []int64{64 << 20, 8 << 20} {
		l := openTest(t, dir, WithClock(clk.Now), WithArchive(func(string, TopicConfig) (ArchivePolicy, bool) {
			return ArchivePolicy{StoreName: "test", Store: store, Retention: -1, LocalRetentionBytes: -1}, true
		}, cache))
		tp, err := l.Topic("t")
		if err != nil {
			t.Fatal(err)
		}
		p := part(t, tp, 0)
		var wg sync.WaitGroup
		for _, from := range []int64{0, 0, 4321, archived - 1, 17, 9_999} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for off := from; off < min(from+8_000, archived+50); {
					res, err := p.Fetch(off, 256<<10)
					if err != nil {
						t.Errorf("cache %d: fetch at %d: %v", cache, off, err)
						return
					}
					recs, err := DecodeBatches(nil, res.Data, off)
					if err != nil || len(recs) == 0 {
						t.Errorf("cache %d: decode at %d: %d records, %v", cache, off, len(recs), err)
						return
					}
					for _, r := range recs {
						if r.Offset != off || string(r.Value) != value(off) {
							t.Errorf("cache %d: record %d at %d: %.20q", cache, r.Offset, off, r.Value)
							return
						}
						off++
					}
				}
			}()
		}
		wg.Wait()
		st := l.ArchiveCacheStats()
		t.Logf("cache %d MiB: %+v", cache>>20, st)
		if st.CachedBytes > cache || st.Misses == 0 {
			t.Errorf("cache %d: %+v", cache, st)
		}
		l.Close()
	}
}
