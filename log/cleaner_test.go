package log

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func TestRetentionByTime(t *testing.T) {
	clk := newTestClock()
	l := openTest(t, t.TempDir(), WithClock(clk.Now))
	defer l.Close()
	p := part(t, createTopic(t, l, "t", TopicConfig{SegmentBytes: 1024, Retention: Duration(time.Hour)}), 0)
	for i := 0; i < 40; i++ { // records stamped by the clock, one minute apart
		appendValues(t, p, fmt.Sprintf("%03d-%s", i, "padding-padding-padding-padding-padding"))
		clk.Advance(time.Minute)
	}
	segsBefore := p.Stats().Segments
	if n, err := p.ApplyRetention(); err != nil || n != 0 {
		t.Fatalf("retention within the hour deleted %d: %v", n, err)
	}
	clk.Advance(50 * time.Minute) // now the first ~30 minutes' records are over an hour old
	n, err := p.ApplyRetention()
	if err != nil || n == 0 {
		t.Fatalf("retention deleted %d segments: %v", n, err)
	}
	st := p.Stats()
	if st.Segments != segsBefore-n || st.LogStartOffset == 0 || st.HighWatermark != 40 {
		t.Fatalf("after retention: %+v (had %d segments)", st, segsBefore)
	}
	// Every record still held is readable, and none below the log start.
	recs := readAll(t, p, st.LogStartOffset)
	if int64(len(recs)) != 40-st.LogStartOffset {
		t.Fatalf("read %d records from %d", len(recs), st.LogStartOffset)
	}
	// Record i was stamped i minutes after the start: the last deleted one
	// must be older than the retention, the first kept one need not be.
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	lastDeleted := start.Add(time.Duration(st.LogStartOffset-1) * time.Minute)
	if !lastDeleted.Before(clk.Now().Add(-time.Hour)) {
		t.Fatalf("retention deleted offset %d stamped %s, within the hour before %s", st.LogStartOffset-1, lastDeleted, clk.Now())
	}
	if _, err := p.Fetch(0, 100); err == nil {
		t.Fatal("fetch below the log start succeeded")
	}
	// The active segment is never deleted, however old.
	clk.Advance(100 * time.Hour)
	p.ApplyRetention()
	if st := p.Stats(); st.Segments != 1 || st.HighWatermark != 40 {
		t.Fatalf("after everything expired: %+v", st)
	}
}

func TestRetentionByBytes(t *testing.T) {
	l := openTest(t, t.TempDir())
	defer l.Close()
	p := part(t, createTopic(t, l, "t", TopicConfig{SegmentBytes: 1024, RetentionBytes: 3000, Retention: -1}), 0)
	for i := 0; i < 100; i++ {
		appendValues(t, p, fmt.Sprintf("%03d-%s", i, "padding-padding-padding-padding-padding"))
	}
	before := p.Stats()
	if _, err := p.ApplyRetention(); err != nil {
		t.Fatal(err)
	}
	after := p.Stats()
	if after.Bytes < 3000 || after.Bytes > 3000+1024 || after.Segments >= before.Segments {
		t.Fatalf("retention_bytes 3000: before %+v after %+v", before, after)
	}
	if got := readAll(t, p, after.LogStartOffset); int64(len(got)) != 100-after.LogStartOffset {
		t.Fatalf("read %d records", len(got))
	}
}

func TestCompaction(t *testing.T) {
	clk := newTestClock()
	dir := t.TempDir()
	l := openTest(t, dir, WithClock(clk.Now))
	cfg := TopicConfig{Cleanup: CleanupCompact, SegmentBytes: 1024, DeleteRetention: Duration(time.Hour), Compression: "zstd"}
	p := part(t, createTopic(t, l, "c", cfg), 0)
	latest := map[string]string{}
	off := int64(0)
	for round := 0; round < 8; round++ {
		for k := 0; k < 10; k++ {
			key := fmt.Sprintf("key-%d", k)
			val := fmt.Sprintf("v%d-%d", round, k)
			recs := []Record{{Key: []byte(key), Value: []byte(val)}}
			if round == 3 && k >= 8 { // keys 8 and 9 are deleted...
				recs[0].Value, val = nil, ""
			}
			if round > 3 && k >= 8 { // ...and stay deleted
				continue
			}
			if _, _, err := p.Append(context.Background(), recs); err != nil {
				t.Fatal(err)
			}
			latest[key] = val
			off++
		}
	}
	appendValuesKeyed(t, p, "key-0", "final") // roll past the last batch
	latest["key-0"] = "final"
	hw := p.HighWatermark()
	offsetsBefore := map[int64]string{}
	for _, r := range readAll(t, p, 0) {
		offsetsBefore[r.Offset] = string(r.Key) + "=" + string(r.Value)
	}
	st, err := p.Compact()
	if err != nil {
		t.Fatal(err)
	}
	if st.RecordsRemoved == 0 || st.SegmentsRewritten == 0 {
		t.Fatalf("compaction did nothing: %+v", st)
	}
	check := func(wantTombstones bool) {
		t.Helper()
		seen := map[string]string{}
		var prev int64 = -1
		for _, r := range readAll(t, p, 0) {
			if r.Offset <= prev {
				t.Fatalf("offsets out of order: %d after %d", r.Offset, prev)
			}
			prev = r.Offset
			if offsetsBefore[r.Offset] != string(r.Key)+"="+string(r.Value) {
				t.Fatalf("offset %d now holds %s=%s, was %s", r.Offset, r.Key, r.Value, offsetsBefore[r.Offset])
			}
			seen[string(r.Key)] = string(r.Value)
		}
		for k, v := range latest {
			got, ok := seen[k]
			if v == "" {
				if ok != wantTombstones || got != "" {
					t.Fatalf("key %s: tombstone present=%v (value %q), want present=%v", k, ok, got, wantTombstones)
				}
				continue
			}
			if got != v {
				t.Fatalf("key %s: latest value %q, want %q", k, got, v)
			}
		}
		if p.HighWatermark() != hw {
			t.Fatalf("high watermark moved to %d", p.HighWatermark())
		}
	}
	check(true) // tombstones younger than delete_retention stay
	// Only the latest record of each key is left in the closed segments.
	count := map[string]int{}
	for _, r := range readAll(t, p, 0) {
		count[string(r.Key)]++
	}
	for k, n := range count {
		if n > 2 { // the latest, plus possibly one in the active segment
			t.Fatalf("key %s appears %d times after compaction", k, n)
		}
	}
	clk.Advance(2 * time.Hour)
	st, err = p.Compact()
	if err != nil || st.TombstonesRemoved != 2 {
		t.Fatalf("second pass removed %d tombstones (want 2): %v", st.TombstonesRemoved, err)
	}
	check(false)
	// The compacted log survives a reopen, indexes and all.
	l.Close()
	l = openTest(t, dir, WithClock(clk.Now))
	defer l.Close()
	tp, _ := l.Topic("c")
	p = part(t, tp, 0)
	check(false)
	if first, _ := appendValuesKeyed(t, p, "key-1", "after"); first != hw {
		t.Fatalf("append after compaction at %d, want %d", first, hw)
	}
}

func appendValuesKeyed(t testing.TB, p *Partition, key, val string) (int64, int64) {
	t.Helper()
	first, last, err := p.Append(context.Background(), []Record{{Key: []byte(key), Value: []byte(val)}})
	if err != nil {
		t.Fatal(err)
	}
	return first, last
}
