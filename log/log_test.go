package log

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestBatchRoundTrip(t *testing.T) {
	for _, c := range []Compression{CompressionNone, CompressionGzip, CompressionZstd} {
		t.Run(c.String(), func(t *testing.T) {
			ts := time.UnixMilli(1_700_000_000_123)
			in := []Record{
				{Key: []byte("k1"), Value: []byte("v1"), Timestamp: ts, Headers: []Header{{"h", []byte("x")}, {"nil", nil}}},
				{Key: nil, Value: []byte(strings.Repeat("z", 5000)), Timestamp: ts.Add(time.Second)},
				{Key: []byte("tomb"), Value: nil, Timestamp: ts.Add(-time.Second)},
				{Key: []byte{}, Value: []byte{}, Timestamp: ts},
			}
			b, info, err := encodeBatch(nil, in, c, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if info.count != 4 || info.maxTimestamp != ts.Add(time.Second).UnixMilli() {
				t.Fatalf("info %+v", info)
			}
			out, err := DecodeBatches(nil, b, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(out) != len(in) {
				t.Fatalf("got %d records", len(out))
			}
			for i := range in {
				in[i].Offset = int64(i)
				if !reflect.DeepEqual(normalize(in[i]), normalize(out[i])) {
					t.Errorf("record %d: got %+v want %+v", i, out[i], in[i])
				}
			}
			// A flipped bit anywhere after the CRC field is caught.
			b[len(b)-3] ^= 0x40
			if _, err := DecodeBatches(nil, b, 0); !errors.Is(err, ErrCorruptBatch) {
				t.Fatalf("corrupt batch decoded: %v", err)
			}
		})
	}
}

func normalize(r Record) Record {
	r.Timestamp = r.Timestamp.UTC()
	if len(r.Headers) == 0 {
		r.Headers = nil
	}
	return r
}

func TestAppendFetchReopen(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir)
	tp := createTopic(t, l, "orders", TopicConfig{Partitions: 3, SegmentBytes: 1024})
	p := part(t, tp, 1)
	var want []string
	for i := 0; i < 50; i++ {
		vals := seq(fmt.Sprintf("b%d-", i), 5)
		first, last := appendValues(t, p, vals...)
		if first != int64(i*5) || last != first+4 {
			t.Fatalf("batch %d at %d..%d", i, first, last)
		}
		want = append(want, vals...)
	}
	if got := values(readAll(t, p, 0)); !reflect.DeepEqual(got, want) {
		t.Fatalf("read back %d records, want %d", len(got), len(want))
	}
	if st := p.Stats(); st.Segments < 3 {
		t.Fatalf("expected segments to roll at 1 KiB, got %d", st.Segments)
	}
	// Mid-log reads start at the right record.
	if got := values(readAll(t, p, 123)); !reflect.DeepEqual(got, want[123:]) {
		t.Fatalf("read from 123: got %d records", len(got))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openTest(t, dir)
	defer l.Close()
	tp, err := l.Topic("orders")
	if err != nil {
		t.Fatal(err)
	}
	if tp.Partitions() != 3 || tp.Config().SegmentBytes != 1024 {
		t.Fatalf("config not persisted: %+v", tp.Config())
	}
	p = part(t, tp, 1)
	if got := values(readAll(t, p, 0)); !reflect.DeepEqual(got, want) {
		t.Fatalf("after reopen read %d records, want %d", len(got), len(want))
	}
	first, _ := appendValues(t, p, "after")
	if first != 250 {
		t.Fatalf("append after reopen at %d, want 250", first)
	}
	if _, err := p.Fetch(252, 100); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("fetch past hw: %v", err)
	}
	res, err := p.Fetch(251, 100)
	if err != nil || len(res.Data) != 0 {
		t.Fatalf("fetch at hw: %v %d bytes", err, len(res.Data))
	}
}

func TestConcurrentAppendsGetDistinctOrderedOffsets(t *testing.T) {
	l := openTest(t, t.TempDir())
	defer l.Close()
	p := part(t, createTopic(t, l, "t", TopicConfig{SegmentBytes: 64 << 10}), 0)
	const producers, each = 16, 50
	var wg sync.WaitGroup
	for w := 0; w < producers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				v := fmt.Sprintf("w%d-%d", w, i)
				if _, _, err := p.Append(context.Background(), []Record{{Value: []byte(v)}}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	recs := readAll(t, p, 0)
	if len(recs) != producers*each {
		t.Fatalf("got %d records", len(recs))
	}
	last := map[int]int{}
	for i, r := range recs {
		if r.Offset != int64(i) {
			t.Fatalf("record %d has offset %d", i, r.Offset)
		}
		var w, n int
		fmt.Sscanf(string(r.Value), "w%d-%d", &w, &n)
		if prev, ok := last[w]; ok && n != prev+1 {
			t.Fatalf("producer %d: %d after %d", w, n, prev)
		}
		last[w] = n
	}
}

func TestProducePartitionsByKeyAndRoundRobin(t *testing.T) {
	l := openTest(t, t.TempDir())
	defer l.Close()
	tp := createTopic(t, l, "t", TopicConfig{Partitions: 4})
	res, err := tp.Produce(context.Background(), []Record{{Key: []byte("21"), Value: []byte("a")}, {Key: []byte("foobar"), Value: []byte("b")}})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Partition != PartitionForKey([]byte("21"), 4) || res[1].Partition != PartitionForKey([]byte("foobar"), 4) {
		t.Fatalf("keyed records placed at %+v", res)
	}
	seen := map[int]bool{}
	for i := 0; i < 4; i++ {
		res, err := tp.Produce(context.Background(), []Record{{Value: []byte("x")}, {Value: []byte("y")}})
		if err != nil {
			t.Fatal(err)
		}
		if res[0].Partition != res[1].Partition {
			t.Fatalf("one keyless batch split over partitions: %+v", res)
		}
		seen[res[0].Partition] = true
	}
	if len(seen) != 4 {
		t.Fatalf("keyless batches used partitions %v, want all 4 in turn", seen)
	}
}

func TestOffsetForTime(t *testing.T) {
	l := openTest(t, t.TempDir())
	defer l.Close()
	p := part(t, createTopic(t, l, "t", TopicConfig{SegmentBytes: 2048, IndexIntervalBytes: 256}), 0)
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 200; i++ {
		ts := base.Add(time.Duration(i) * time.Second)
		if _, _, err := p.Append(context.Background(), []Record{{Value: []byte(fmt.Sprintf("v%03d", i)), Timestamp: ts}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		at   time.Time
		want int64
		ok   bool
	}{
		{base.Add(-time.Hour), 0, true},
		{base, 0, true},
		{base.Add(57 * time.Second), 57, true},
		{base.Add(57*time.Second + 500*time.Millisecond), 58, true},
		{base.Add(199 * time.Second), 199, true},
		{base.Add(200 * time.Second), 200, false},
	} {
		got, ok, err := p.OffsetForTime(c.at)
		if err != nil || got != c.want || ok != c.ok {
			t.Errorf("offset for %s: %d %v %v, want %d %v", c.at, got, ok, err, c.want, c.ok)
		}
	}
	if p.Stats().Segments < 3 {
		t.Fatalf("want several segments, got %d", p.Stats().Segments)
	}
}

func TestLimitsAndValidation(t *testing.T) {
	l := openTest(t, t.TempDir())
	defer l.Close()
	p := part(t, createTopic(t, l, "t", TopicConfig{MaxRecordBytes: 100, MaxBatchBytes: 1000}), 0)
	if _, _, err := p.Append(context.Background(), []Record{{Value: make([]byte, 101)}}); !errors.Is(err, ErrRecordTooLarge) {
		t.Fatalf("oversized record: %v", err)
	}
	many := make([]Record, 20)
	for i := range many {
		many[i].Value = make([]byte, 90)
	}
	if _, _, err := p.Append(context.Background(), many); !errors.Is(err, ErrBatchTooLarge) {
		t.Fatalf("oversized batch: %v", err)
	}
	c := part(t, createTopic(t, l, "c", TopicConfig{Cleanup: CleanupCompact}), 0)
	if _, _, err := c.Append(context.Background(), []Record{{Value: []byte("x")}}); !errors.Is(err, ErrInvalidRecord) {
		t.Fatalf("keyless record on a compacted topic: %v", err)
	}
	if p.HighWatermark() != 0 || c.HighWatermark() != 0 {
		t.Fatal("a refused append changed the log")
	}
	for _, name := range []string{"", "a/b", "..", strings.Repeat("x", 250), "bad name"} {
		if _, err := l.CreateTopic(name, TopicConfig{}); !errors.Is(err, ErrInvalidTopic) {
			t.Errorf("topic name %q: %v", name, err)
		}
	}
	if _, err := l.CreateTopic("x", TopicConfig{Cleanup: "sometimes"}); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "cleanup") {
		t.Errorf("bad cleanup: %v", err)
	}
	if _, err := l.CreateTopic("t", TopicConfig{}); !errors.Is(err, ErrTopicExists) {
		t.Errorf("duplicate topic: %v", err)
	}
}

func TestDataDirLock(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir)
	_, err := Open(dir, WithLogger(quietLogger()))
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
		t.Fatalf("second open: %v", err)
	}
	l.Close()
	l2 := openTest(t, dir)
	l2.Close()
}

func TestDeleteTopic(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir)
	appendValues(t, part(t, createTopic(t, l, "gone", TopicConfig{}), 0), "a")
	if err := l.DeleteTopic("gone"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Topic("gone"); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("deleted topic still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "gone")); !os.IsNotExist(err) {
		t.Fatalf("topic directory left: %v", err)
	}
	if err := l.DeleteTopic(OffsetsTopic); err == nil {
		t.Fatal("deleted the internal offsets topic")
	}
	// Recreated empty.
	p := part(t, createTopic(t, l, "gone", TopicConfig{}), 0)
	if p.HighWatermark() != 0 {
		t.Fatal("recreated topic has old data")
	}
	l.Close()
}

func TestWaitWakesOnAppend(t *testing.T) {
	l := openTest(t, t.TempDir())
	defer l.Close()
	p := part(t, createTopic(t, l, "t", TopicConfig{}), 0)
	done := make(chan error, 1)
	go func() { done <- p.Wait(context.Background(), 0) }()
	select {
	case err := <-done:
		t.Fatalf("wait returned before any data: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	appendValues(t, p, "x")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := p.Wait(ctx, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait with deadline: %v", err)
	}
}

func TestFsyncPolicies(t *testing.T) {
	for _, pol := range []FsyncPolicy{FsyncAlways, FsyncInterval, FsyncNever} {
		t.Run(string(pol), func(t *testing.T) {
			dir := t.TempDir()
			l := openTest(t, dir)
			p := part(t, createTopic(t, l, "t", TopicConfig{Fsync: pol, FlushInterval: Duration(10 * time.Millisecond)}), 0)
			appendValues(t, p, seq("v", 100)...)
			l.Close()
			l = openTest(t, dir)
			defer l.Close()
			tp, _ := l.Topic("t")
			if got := len(readAll(t, part(t, tp, 0), 0)); got != 100 {
				t.Fatalf("got %d records", got)
			}
		})
	}
}

func TestSegmentsRollOnAge(t *testing.T) {
	clk := newTestClock()
	dir := t.TempDir()
	l := openTest(t, dir, WithClock(clk.Now))
	p := part(t, createTopic(t, l, "t", TopicConfig{SegmentAge: Duration(time.Hour)}), 0)
	appendValues(t, p, "a")
	clk.Advance(30 * time.Minute)
	appendValues(t, p, "b")
	if n := p.Stats().Segments; n != 1 {
		t.Fatalf("rolled before the age: %d segments", n)
	}
	clk.Advance(31 * time.Minute)
	appendValues(t, p, "c")
	if n := p.Stats().Segments; n != 2 {
		t.Fatalf("did not roll after an hour: %d segments", n)
	}
	// The age survives a restart: it is read back from the first batch.
	l.Close()
	clk.Advance(2 * time.Hour)
	l = openTest(t, dir, WithClock(clk.Now))
	defer l.Close()
	tp, _ := l.Topic("t")
	p = part(t, tp, 0)
	appendValues(t, p, "d")
	if n := p.Stats().Segments; n != 3 {
		t.Fatalf("did not roll an old segment after reopen: %d segments", n)
	}
	if got := values(readAll(t, p, 0)); strings.Join(got, "") != "abcd" {
		t.Fatalf("read %v", got)
	}
}

// Close while appends are in flight: each append either succeeds, and is
// then on disk after a reopen, or is refused with ErrClosed; none hangs.
func TestCloseDuringAppends(t *testing.T) {
	for trial := 0; trial < 20; trial++ {
		dir := t.TempDir()
		l := openTest(t, dir)
		p := part(t, createTopic(t, l, "t", TopicConfig{}), 0)
		var wg sync.WaitGroup
		var mu sync.Mutex
		acked := map[string]bool{}
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					v := fmt.Sprintf("w%d-%d", w, i)
					_, _, err := p.Append(context.Background(), []Record{{Value: []byte(v)}})
					if errors.Is(err, ErrClosed) {
						return
					}
					if err != nil {
						t.Errorf("append: %v", err)
						return
					}
					mu.Lock()
					acked[v] = true
					mu.Unlock()
				}
			}()
		}
		time.Sleep(time.Duration(trial) * time.Millisecond)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("an append hung across Close")
		}
		l = openTest(t, dir)
		tp, _ := l.Topic("t")
		got := map[string]bool{}
		for _, r := range readAll(t, part(t, tp, 0), 0) {
			got[string(r.Value)] = true
		}
		for v := range acked {
			if !got[v] {
				t.Fatalf("trial %d: acknowledged %s is missing after reopen", trial, v)
			}
		}
		l.Close()
	}
}

// Reopening after a clean close leaves the active segment's index files as
// they are (no rewrite, no fsyncs); index files that disagree with the
// segment are rebuilt, and reads by offset find their records either way.
func TestReopenRewritesOnlyStaleIndexes(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir)
	p := part(t, createTopic(t, l, "orders", TopicConfig{IndexIntervalBytes: 64}), 0)
	for i := 0; i < 40; i++ {
		appendValues(t, p, seq(fmt.Sprintf("b%d-", i), 5)...)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	idxPath := filepath.Join(dir, "orders", "0", segmentName(0)+indexSuffix)
	inode := func() uint64 {
		fi, err := os.Stat(idxPath)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Sys().(*syscall.Stat_t).Ino
	}
	before, _ := os.ReadFile(idxPath)
	if len(before) < 2*indexEntrySize {
		t.Fatalf("the index holds %d bytes; the test needs several entries", len(before))
	}
	ino := inode()
	l = openTest(t, dir)
	if inode() != ino {
		t.Error("a clean reopen rewrote the index")
	}
	l.Close()
	if err := os.WriteFile(idxPath, before[:indexEntrySize], 0o644); err != nil { // stale: one entry
		t.Fatal(err)
	}
	l = openTest(t, dir)
	defer l.Close()
	if after, _ := os.ReadFile(idxPath); !bytes.Equal(after, before) {
		t.Fatalf("the stale index was not rebuilt: %d bytes, want %d", len(after), len(before))
	}
	tp, _ := l.Topic("orders")
	if got := values(readAll(t, part(t, tp, 0), 137)); len(got) != 200-137 || got[0] != "b27-2" {
		t.Fatalf("read from 137 after reopen: %d records, first %v", len(got), got[:min(1, len(got))])
	}
}
