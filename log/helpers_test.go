package log

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// testClock is a settable clock for retention, compaction and sessions.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock() *testClock { return &testClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func openTest(t testing.TB, dir string, opts ...Option) *Log {
	t.Helper()
	opts = append([]Option{WithLogger(quietLogger()), WithCleanerInterval(0)}, opts...)
	l, err := Open(dir, opts...)
	if err != nil {
		t.Fatalf("open log: %v", err)
	}
	return l
}

func createTopic(t testing.TB, l *Log, name string, cfg TopicConfig) *Topic {
	t.Helper()
	tp, err := l.CreateTopic(name, cfg)
	if err != nil {
		t.Fatalf("create topic %s: %v", name, err)
	}
	return tp
}

func part(t testing.TB, tp *Topic, i int) *Partition {
	t.Helper()
	p, err := tp.Partition(i)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func appendValues(t testing.TB, p *Partition, vals ...string) (int64, int64) {
	t.Helper()
	recs := make([]Record, len(vals))
	for i, v := range vals {
		recs[i] = Record{Value: []byte(v)}
	}
	first, last, err := p.Append(context.Background(), recs)
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	return first, last
}

// readAll reads every record from offset to the high watermark.
func readAll(t testing.TB, p *Partition, from int64) []Record {
	t.Helper()
	var out []Record
	for off := from; off < p.HighWatermark(); {
		res, err := p.Fetch(off, 1<<20)
		if err != nil {
			t.Fatalf("fetch at %d: %v", off, err)
		}
		if len(res.Data) == 0 {
			break
		}
		recs, err := DecodeBatches(nil, res.Data, off)
		if err != nil {
			t.Fatalf("decode at %d: %v", off, err)
		}
		out = append(out, recs...)
		off = res.NextOffset
	}
	return out
}

func values(recs []Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = string(r.Value)
		if r.Value == nil {
			out[i] = "<nil>"
		}
	}
	return out
}

func seq(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}
