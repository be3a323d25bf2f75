package log

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// faults is a switchboard for the log's fault seam: each armed rule fails
// the operations it matches with its error, the first skip matches aside.
type faults struct {
	mu    sync.Mutex
	rules []*faultRule
	hits  atomic.Int64
}

type faultRule struct {
	op     FileOp
	suffix string // of the path
	part   string // a substring of the path (the topic's directory)
	err    error
	skip   int // matches to let through first
}

func (f *faults) arm(r faultRule) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = append(f.rules, &r)
}

func (f *faults) clear() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = nil
}

func (f *faults) fn(op FileOp, path string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.rules {
		if r.op != op || !strings.HasSuffix(path, r.suffix) || !strings.Contains(path, r.part) {
			continue
		}
		if r.skip > 0 {
			r.skip--
			continue
		}
		f.hits.Add(1)
		return r.err
	}
	return nil
}

// openFaulty opens the log in dir with the switchboard in its seam.
func openFaulty(t *testing.T, dir string) (*Log, *faults) {
	t.Helper()
	f := &faults{}
	return openTest(t, dir, WithFaults(f.fn)), f
}

// A failed fsync fails the append; the partition keeps failing appends with
// the same error until the log is reopened, its high watermark never covers
// the unsynced batch, readiness reports it, other partitions go on, and
// the reopened log holds exactly what was acknowledged.
func TestFailedFsyncFailsAppend(t *testing.T) {
	dir := t.TempDir()
	l, f := openFaulty(t, dir)
	tp := createTopic(t, l, "orders", TopicConfig{Partitions: 2})
	p, other := part(t, tp, 0), part(t, tp, 1)
	appendValues(t, p, seq("a", 10)...)
	hw := p.HighWatermark()

	f.arm(faultRule{op: OpSync, suffix: logSuffix, part: filepath.Join("orders", "0"), err: syscall.EIO})
	_, _, err := p.Append(context.Background(), []Record{{Value: []byte("lost")}})
	if !errors.Is(err, syscall.EIO) || !errors.Is(err, ErrPartitionFailed) {
		t.Fatalf("append under a failing fsync: %v, want EIO and ErrPartitionFailed", err)
	}
	if got := p.HighWatermark(); got != hw {
		t.Fatalf("high watermark moved to %d over an unsynced batch (was %d)", got, hw)
	}
	if recs := readAll(t, p, 0); len(recs) != 10 {
		t.Fatalf("readers see %d records, want the 10 synced ones", len(recs))
	}
	f.clear() // the disk heals; the partition does not pretend it did
	for i := 0; i < 3; i++ {
		_, _, err := p.Append(context.Background(), []Record{{Value: []byte("later")}})
		if !errors.Is(err, syscall.EIO) || !errors.Is(err, ErrPartitionFailed) {
			t.Fatalf("append %d after the failure: %v, want the sticky fsync error", i, err)
		}
	}
	appendValues(t, other, "b0") // the fault is the partition's, not the log's
	faults := l.Faults()
	if len(faults) != 1 || faults[0].Topic != "orders" || faults[0].Partition != 0 || !strings.Contains(faults[0].Error, "input/output error") {
		t.Fatalf("faults = %+v, want orders/0 with its fsync error", faults)
	}
	l.Close()

	l = openTest(t, dir)
	defer l.Close()
	p = part(t, l.mustTopic(t, "orders"), 0)
	if got := values(readAll(t, p, 0)); !slices.Equal(got, seq("a", 10)) {
		t.Fatalf("reopened partition holds %v, want a0..a9", got)
	}
	if len(l.Faults()) != 0 {
		t.Fatalf("a reopened log reports faults %+v", l.Faults())
	}
	appendValues(t, p, "a10")
}

// A write that fills the disk half-way leaves no torn batch: the segment is
// cut back to its last whole batch at once, not only on recovery.
func TestDiskFullMidWrite(t *testing.T) {
	dir := t.TempDir()
	l, f := openFaulty(t, dir)
	p := part(t, createTopic(t, l, "t", TopicConfig{}), 0)
	appendValues(t, p, seq("v", 5)...)
	seg := p.activeSegment()
	size := seg.size.Load()
	f.arm(faultRule{op: OpWrite, suffix: logSuffix, part: filepath.Join("t", "0"), err: syscall.ENOSPC})
	_, _, err := p.Append(context.Background(), []Record{{Value: []byte(strings.Repeat("x", 4096))}})
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("append on a full disk: %v, want ENOSPC", err)
	}
	fi, err := os.Stat(seg.path(logSuffix))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != size {
		t.Fatalf("segment is %d bytes after the failed write, want %d (its last whole batch)", fi.Size(), size)
	}
	l.Close()
	l = openTest(t, dir)
	defer l.Close()
	if got := values(readAll(t, part(t, l.mustTopic(t, "t"), 0), 0)); !slices.Equal(got, seq("v", 5)) {
		t.Fatalf("reopened partition holds %v", got)
	}
}

// Concurrent appenders, and an fsync that fails part-way through: every
// append is either acknowledged and kept, or refused and absent after the
// reopen. Nothing acknowledged is lost, nothing refused comes back.
func TestFsyncFailureUnderConcurrentAppends(t *testing.T) {
	dir := t.TempDir()
	l, f := openFaulty(t, dir)
	p := part(t, createTopic(t, l, "t", TopicConfig{}), 0)
	f.arm(faultRule{op: OpSync, suffix: logSuffix, part: filepath.Join("t", "0"), err: syscall.EIO, skip: 40})
	var mu sync.Mutex
	var acked []string
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				v := fmt.Sprintf("w%d-%d", w, i)
				if _, _, err := p.Append(context.Background(), []Record{{Value: []byte(v)}}); err != nil {
					if !errors.Is(err, ErrPartitionFailed) {
						t.Errorf("append: %v", err)
					}
					return
				}
				mu.Lock()
				acked = append(acked, v)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if f.hits.Load() == 0 {
		t.Fatal("the fault never fired")
	}
	l.Close()
	l = openTest(t, dir)
	defer l.Close()
	got := values(readAll(t, part(t, l.mustTopic(t, "t"), 0), 0))
	slices.Sort(got)
	slices.Sort(acked)
	if !slices.Equal(got, acked) {
		t.Fatalf("reopened partition holds %d records, %d were acknowledged; first difference: %s",
			len(got), len(acked), firstMismatch(got, acked))
	}
}

// A roll whose new segment cannot be created fails the append; what the
// reopened log holds is every acknowledged record, in order, and whole
// batches only.
func TestRollFailure(t *testing.T) {
	dir := t.TempDir()
	l, f := openFaulty(t, dir)
	p := part(t, createTopic(t, l, "t", TopicConfig{SegmentBytes: 1024}), 0)
	var acked []string
	for i := 0; i < 10; i++ {
		v := fmt.Sprintf("%03d-%s", i, strings.Repeat("x", 200))
		appendValues(t, p, v)
		acked = append(acked, v)
	}
	f.arm(faultRule{op: OpCreate, suffix: logSuffix, part: filepath.Join("t", "0"), err: syscall.ENOSPC})
	var err error
	for i := 10; err == nil && i < 100; i++ {
		v := fmt.Sprintf("%03d-%s", i, strings.Repeat("x", 200))
		if _, _, err = p.Append(context.Background(), []Record{{Value: []byte(v)}}); err == nil {
			acked = append(acked, v)
		}
	}
	if !errors.Is(err, syscall.ENOSPC) || !errors.Is(err, ErrPartitionFailed) {
		t.Fatalf("append needing a new segment on a full disk: %v", err)
	}
	l.Close()
	l = openTest(t, dir)
	defer l.Close()
	got := values(readAll(t, part(t, l.mustTopic(t, "t"), 0), 0))
	if len(got) < len(acked) || !slices.Equal(got[:len(acked)], acked) {
		t.Fatalf("reopened partition holds %d records, want the %d acknowledged first", len(got), len(acked))
	}
	if len(got) > len(acked)+1 {
		t.Fatalf("reopened partition holds %d records: more than the acknowledged %d and the one refused", len(got), len(acked))
	}
}

// Under fsync "interval" the records are acknowledged before the sync; a
// sync that fails makes the partition refuse appends, since what it
// acknowledged may not be on disk, and readiness says so.
func TestIntervalSyncFailure(t *testing.T) {
	l, f := openFaulty(t, t.TempDir())
	defer l.Close()
	p := part(t, createTopic(t, l, "t", TopicConfig{Fsync: FsyncInterval, FlushInterval: Duration(50 * time.Millisecond)}), 0)
	f.arm(faultRule{op: OpSync, suffix: logSuffix, part: filepath.Join("t", "0"), err: syscall.EIO})
	appendValues(t, p, "acknowledged before the sync")
	deadline := time.Now().Add(10 * time.Second)
	for len(l.Faults()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the failed periodic sync was never reported")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, _, err := p.Append(context.Background(), []Record{{Value: []byte("x")}}); !errors.Is(err, syscall.EIO) {
		t.Fatalf("append after a failed periodic sync: %v, want the sync's error", err)
	}
}

// A compaction that meets a full disk (writing the cleaned segment) or a
// failing rename leaves the old segments in place and readable, before and
// after a reopen, and compacts once the disk recovers.
func TestCompactionDiskFull(t *testing.T) {
	for _, rule := range []faultRule{
		{op: OpWrite, suffix: cleanedSuffix, err: syscall.ENOSPC},
		{op: OpCreate, suffix: cleanedSuffix, err: syscall.ENOSPC},
		{op: OpSync, suffix: cleanedSuffix, err: syscall.EIO},
		{op: OpRename, suffix: logSuffix, err: syscall.EIO},
	} {
		t.Run(fmt.Sprintf("%s-%s", rule.op, strings.TrimPrefix(rule.suffix, ".")), func(t *testing.T) {
			dir := t.TempDir()
			l, f := openFaulty(t, dir)
			p := part(t, createTopic(t, l, "c", TopicConfig{Cleanup: CleanupCompact, SegmentBytes: 1024}), 0)
			var want []string
			for i := 0; i < 60; i++ {
				v := fmt.Sprintf("k%d=%d", i%5, i)
				if _, _, err := p.Append(context.Background(), []Record{{Key: []byte(fmt.Sprintf("k%d", i%5)), Value: []byte(v)}}); err != nil {
					t.Fatal(err)
				}
				want = append(want, v)
			}
			if got := values(readAll(t, p, 0)); !slices.Equal(got, want) {
				t.Fatalf("before compaction: %v", got)
			}
			rule.part = filepath.Join("c", "0")
			f.arm(rule)
			if err := l.Clean(context.Background()); err == nil || f.hits.Load() == 0 {
				t.Fatalf("compaction on a failing disk: err %v after %d faults, want the fault's error", err, f.hits.Load())
			}
			if got := values(readAll(t, p, 0)); !slices.Equal(got, want) {
				t.Fatalf("after the failed compaction readers see %d records, want all %d", len(got), len(want))
			}
			if len(l.Faults()) != 0 {
				t.Fatalf("a failed compaction stopped appends: %+v", l.Faults())
			}
			l.Close()
			l, f = openFaulty(t, dir)
			defer l.Close()
			p = part(t, l.mustTopic(t, "c"), 0)
			if got := values(readAll(t, p, 0)); !slices.Equal(got, want) {
				t.Fatalf("reopened after the failed compaction: %d records, want all %d", len(got), len(want))
			}
			if err := l.Clean(context.Background()); err != nil {
				t.Fatalf("compaction on a healed disk: %v", err)
			}
			got := values(readAll(t, p, 0))
			if len(got) >= len(want) || got[len(got)-1] != want[len(want)-1] {
				t.Fatalf("healed compaction kept %d of %d records, last %q", len(got), len(want), got[len(got)-1])
			}
		})
	}
}

func (l *Log) mustTopic(t *testing.T, name string) *Topic {
	t.Helper()
	tp, err := l.Topic(name)
	if err != nil {
		t.Fatal(err)
	}
	return tp
}

func firstMismatch(a, b []string) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return fmt.Sprintf("at %d: %q vs %q", i, a[i], b[i])
		}
	}
	return fmt.Sprintf("lengths %d and %d", len(a), len(b))
}
