package connect_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/eddy-cdc/eddy/connect"
	elog "github.com/eddy-cdc/eddy/log"
	"github.com/eddy-cdc/eddy/registry"
	"github.com/eddy-cdc/eddy/sources/datagen"
)

// Benchmarks of the runtime. Run them on an idle machine, for instance:
//
//	go test -run '^$' -bench . -benchtime 200000x ./connect/
//
// Each reports events/s (or ns/event) in the units users think in; none
// asserts anything.

func genParams(b testing.TB) connect.Params {
	cat, err := connect.BuiltinCatalog()
	if err != nil {
		b.Fatal(err)
	}
	p, err := connect.NewParams(cat.Plugin("datagen-source"), map[string]any{"keys": 10000, "tables": []string{"orders"}, "topic_prefix": "b"})
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// datagenRecords generates n events as the datagen source would.
func datagenRecords(b testing.TB, n int) []connect.Record {
	src, err := datagen.New(genParams(b), connect.Env{Connector: "gen"})
	if err != nil {
		b.Fatal(err)
	}
	g := src.(*datagen.Generator)
	now := time.Now()
	var out []connect.Record
	for i := 0; len(out) < n; i++ {
		out = append(out, g.Event(uint64(i), now)...)
	}
	return out[:n]
}

const benchSource = `
connectors:
  - name: gen
    plugin: datagen-source
    config: {rate: 0, max_events: %d, keys: 10000, tables: [orders], batch_size: 2000, topic_prefix: b}
`

func sourceDone(h *harness, name string, last uint64) bool {
	o, err := h.w.Offsets(name)
	if err != nil || len(o.Offsets) == 0 {
		return false
	}
	pos := o.Offsets[0].Offset["position"].([]byte)
	return len(pos) >= 8 && binary.BigEndian.Uint64(pos) >= last
}

// datagen -> log, Avro through the registry, fsync always, one connector.
func BenchmarkSourceDatagenToLogAvro(b *testing.B) {
	dir := b.TempDir()
	n := max(b.N, 1000)
	startAt := time.Now()
	h := start(b, dir, fmt.Sprintf(benchSource, n))
	waitFor(b, "the source", 10*time.Minute, func() bool { return sourceDone(h, "gen", uint64(n-1)) })
	d := time.Since(startAt)
	b.ReportMetric(float64(n)/d.Seconds(), "events/s")
	b.ReportMetric(float64(d.Nanoseconds())/float64(n), "ns/event")
}

// log -> file sink (JSON lines, fsync per batch), one connector.
func BenchmarkSinkLogToFile(b *testing.B) {
	dir := b.TempDir()
	n := max(b.N, 1000)
	h := start(b, dir, fmt.Sprintf(benchSource, n))
	waitFor(b, "the source", 10*time.Minute, func() bool { return sourceDone(h, "gen", uint64(n-1)) })
	h.stop(b)
	startAt := time.Now()
	h = start(b, dir, fmt.Sprintf(`
connectors:
  - name: out
    plugin: file-sink
    topics: [b.public.orders]
    config: {path: %s}
`, filepath.Join(dir, "out.jsonl")))
	tp, _ := h.log.Topic("b.public.orders")
	p, _ := tp.Partition(0)
	want := p.HighWatermark()
	waitFor(b, "the sink", 10*time.Minute, func() bool {
		o, _ := h.w.Offsets("out")
		return len(o.Offsets) == 1 && o.Offsets[0].Offset["kafka_offset"].(int64) == want
	})
	d := time.Since(startAt)
	b.ReportMetric(float64(want)/d.Seconds(), "events/s")
	b.ReportMetric(float64(d.Nanoseconds())/float64(want), "ns/event")
}

// The runtime's own cost per event: a source task's time minus the time
// of serializing the same records alone and of appending the same bytes
// alone (same batches, same partition, fsync always).
func BenchmarkRuntimeOverhead(b *testing.B) {
	n := max(b.N, 1000)
	recs := datagenRecords(b, n)
	ctx := context.Background()
	const batch = 2000

	// Serialization alone.
	l, err := elog.Open(filepath.Join(b.TempDir(), "data"))
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	reg, err := registry.Open(ctx, l)
	if err != nil {
		b.Fatal(err)
	}
	conv := connect.NewConverter(registry.NewSerde(registry.Local(reg)), "avro")
	hdr := []byte("gen")
	withHeaders := func(r connect.Record) connect.Record {
		r.Headers = []elog.Header{{Key: connect.HeaderConnector, Value: hdr}, {Key: connect.HeaderPosition, Value: r.Position}}
		return r
	}
	// Measured as the task does it: a batch at a time into one buffer.
	var buf []byte
	out := make([]elog.Record, batch)
	t0 := time.Now()
	for i := 0; i < n; i += batch {
		buf = buf[:0]
		for j := i; j < min(i+batch, n); j++ {
			r := withHeaders(recs[j])
			if buf, err = conv.Encode(ctx, &r, buf, &out[j-i]); err != nil {
				b.Fatal(err)
			}
		}
	}
	ser := time.Since(t0)
	encoded := make([]elog.Record, n) // the same bytes again, kept for the append
	for i := range recs {
		r := withHeaders(recs[i])
		if _, err := conv.Encode(ctx, &r, nil, &encoded[i]); err != nil {
			b.Fatal(err)
		}
	}

	// The log append alone.
	t, err := l.CreateTopic("appendonly", elog.TopicConfig{Partitions: 1})
	if err != nil {
		b.Fatal(err)
	}
	p, _ := t.Partition(0)
	t0 = time.Now()
	for i := 0; i < n; i += batch {
		if _, _, err := p.Append(ctx, encoded[i:min(i+batch, n)]); err != nil {
			b.Fatal(err)
		}
	}
	app := time.Since(t0)

	// The whole source task over the same records.
	dir := b.TempDir()
	t0 = time.Now()
	h := start(b, dir, fmt.Sprintf(`
topics:
  - {name: b.public.orders, partitions: 1}
connectors:
  - name: replay
    plugin: replay-source
    config: {batch_size: %d}
`, batch), recs...)
	last := recs[n-1].Position
	waitFor(b, "the source", 10*time.Minute, func() bool {
		o, _ := h.w.Offsets("replay")
		return len(o.Offsets) == 1 && string(o.Offsets[0].Offset["position"].([]byte)) == string(last)
	})
	total := time.Since(t0)
	per := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(n) }
	b.ReportMetric(per(ser), "serialize-ns/event")
	b.ReportMetric(per(app), "append-ns/event")
	b.ReportMetric(per(total), "task-ns/event")
	b.ReportMetric(per(total)-per(ser)-per(app), "overhead-ns/event")
	b.ReportMetric(float64(n)/total.Seconds(), "events/s")
}
