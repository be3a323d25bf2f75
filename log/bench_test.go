package log

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
)

// Benchmarks of the log's hot paths. They report the units users think in
// (MB/s, records/s); `eddy bench log` prints the same figures against the
// issue's targets.

func benchRecords(n, size int) []Record {
	v := make([]byte, size)
	for i := range v {
		v[i] = byte('a' + i%26)
	}
	recs := make([]Record, n)
	for i := range recs {
		recs[i].Value = v
	}
	return recs
}

// BenchmarkAppendBatch1000x1KiB appends batches of 1000 1 KiB records with
// fsync "always" to one partition.
func BenchmarkAppendBatch1000x1KiB(b *testing.B) {
	l := openTest(b, b.TempDir())
	defer l.Close()
	p := part(b, createTopic(b, l, "t", TopicConfig{}), 0)
	recs := benchRecords(1000, 1024)
	b.SetBytes(1000 * 1024)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := p.Append(context.Background(), recs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkWriteFdatasyncBaseline is the yardstick for the one above: the
// same bytes written and synced with no log around them.
func BenchmarkWriteFdatasyncBaseline(b *testing.B) {
	f, err := os.Create(filepath.Join(b.TempDir(), "plain"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1000*1024)
	b.SetBytes(int64(len(buf)))
	for i := 0; i < b.N; i++ {
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGroupCommit64 has 64 producers each append one 1 KiB record at a
// time and wait for its durable ack.
func BenchmarkGroupCommit64(b *testing.B) {
	l := openTest(b, b.TempDir())
	defer l.Close()
	p := part(b, createTopic(b, l, "t", TopicConfig{}), 0)
	one := benchRecords(1, 1024)
	b.ResetTimer()
	var wg sync.WaitGroup
	const producers = 64
	for w := 0; w < producers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < b.N; i += producers {
				if _, _, err := p.Append(context.Background(), one); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkRead1KiB fetches and decodes 1 KiB records from the page cache.
func BenchmarkRead1KiB(b *testing.B) {
	l := openTest(b, b.TempDir())
	defer l.Close()
	p := part(b, createTopic(b, l, "t", TopicConfig{Fsync: FsyncNever}), 0)
	recs := benchRecords(1000, 1024)
	for i := 0; i < 100; i++ {
		if _, _, err := p.Append(context.Background(), recs); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(1024)
	b.ResetTimer()
	var out []Record
	var buf []byte
	n := 0
	for n < b.N {
		for off := int64(0); off < p.HighWatermark() && n < b.N; {
			res, err := p.FetchInto(buf, off, 4<<20)
			if err != nil {
				b.Fatal(err)
			}
			buf = res.Data
			if out, err = DecodeBatches(out[:0], res.Data, off); err != nil {
				b.Fatal(err)
			}
			n += len(out)
			off = res.NextOffset
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
}
