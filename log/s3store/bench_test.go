package s3store_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/eddy-cdc/eddy/internal/testdb"
	elog "github.com/eddy-cdc/eddy/log"
	"github.com/eddy-cdc/eddy/log/s3store"
)

// BenchmarkArchive is the archive against plain S3 calls in the same run,
// on the test setup's versitygw:
//
//	go test -run '^$' -bench Archive -benchtime 1x ./log/s3store/
//
// A partition of 384 MiB of records (segments of 64 MiB) is archived by
// Partition.Archive; the same segment files are then uploaded by plain
// PutObject calls, one at a time as the archive does. Then the partition
// is replayed (Fetch and decode of every record, as a consumer does) from
// its local segments, its local copies are dropped, and it is replayed
// again from the archive with a cold cache; the peak heap and the peak
// resident set of the process while replaying are reported beside it.
func BenchmarkArchive(b *testing.B) {
	ctx := context.Background()
	bucket := testdb.S3Bucket(b, "archive-bench")
	st := newBenchStore(b, bucket)
	dir := b.TempDir()
	l, err := elog.Open(dir, elog.WithCleanerInterval(0), elog.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
		elog.WithArchive(func(string, elog.TopicConfig) (elog.ArchivePolicy, bool) {
			return elog.ArchivePolicy{StoreName: "bench", Store: st, Retention: -1, LocalRetention: 0, LocalRetentionBytes: -1}, true
		}, 64<<20))
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	t, err := l.CreateTopic("bench", elog.TopicConfig{SegmentBytes: 64 << 20, Fsync: elog.FsyncNever, MaxBatchBytes: 8 << 20})
	if err != nil {
		b.Fatal(err)
	}
	p, _ := t.Partition(0)
	recs := make([]elog.Record, 1000)
	for i := range recs {
		recs[i] = elog.Record{Key: []byte(fmt.Sprintf("key-%06d", i)), Value: []byte(strings.Repeat(fmt.Sprintf("value %d ", i), 40)),
			Headers: []elog.Header{{Key: "h", Value: []byte("v")}}}
	}
	for p.Stats().Bytes < 384<<20 {
		if _, _, err := p.Append(ctx, recs); err != nil {
			b.Fatal(err)
		}
	}
	total := p.HighWatermark()
	b.ResetTimer()
	start := time.Now()
	run, err := p.Archive(ctx)
	if err != nil {
		b.Fatal(err)
	}
	archive := time.Since(start)
	segs, _ := filepath.Glob(filepath.Join(dir, "bench", "0", "*.log"))
	client := testdb.S3Client(b, testdb.S3SecretKey)
	var plainBytes int64
	start = time.Now()
	for _, path := range segs[:len(segs)-1] { // the closed ones, as archived
		body, err := os.ReadFile(path)
		if err != nil {
			b.Fatal(err)
		}
		plainBytes += int64(len(body))
		if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: aws.String("plain/" + filepath.Base(path)),
			Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(len(body)))}); err != nil {
			b.Fatal(err)
		}
	}
	plain := time.Since(start)
	archivedEnd := p.Stats().Archive.End
	local, _ := replay(b, p, archivedEnd)
	if _, err := p.ApplyRetention(); err != nil || p.LocalStartOffset() != archivedEnd {
		b.Fatalf("local start %d, archived to %d: %v", p.LocalStartOffset(), archivedEnd, err)
	}
	resetPeakRSS(b)
	cold, heap := replay(b, p, archivedEnd)
	rss := peakRSS(b)
	archMB := float64(run.Bytes) / 1e6
	b.ReportMetric(archMB/archive.Seconds(), "archive_MB/s")
	b.ReportMetric(float64(plainBytes)/1e6/plain.Seconds(), "put_MB/s")
	b.ReportMetric((archMB/archive.Seconds())/(float64(plainBytes)/1e6/plain.Seconds()), "archive/put")
	b.ReportMetric(float64(archivedEnd)/local.Seconds(), "local_records/s")
	b.ReportMetric(float64(archivedEnd)/cold.Seconds(), "archive_records/s")
	b.ReportMetric(local.Seconds()/cold.Seconds(), "archive/local")
	b.ReportMetric(float64(heap>>20), "replay_peak_heap_MiB")
	b.ReportMetric(float64(rss>>20), "replay_peak_RSS_MiB")
	b.Logf("%d records, %d segments (%.0f MB) archived in %s; plain PutObject of them %s; replay of %d records: local %s, archive (cold cache) %s, peak heap %d MiB, peak RSS %d MiB",
		total, run.Segments, archMB, archive.Round(time.Millisecond), plain.Round(time.Millisecond), archivedEnd, local.Round(time.Millisecond), cold.Round(time.Millisecond), heap>>20, rss>>20)
}

// replay reads and decodes every record below end, and returns the time
// and the largest heap seen meanwhile.
func replay(b *testing.B, p *elog.Partition, end int64) (time.Duration, uint64) {
	var ms runtime.MemStats
	var peak uint64
	var buf []byte
	var recs []elog.Record
	start := time.Now()
	n := int64(0)
	for off := int64(0); off < end; {
		res, err := p.FetchInto(buf, off, 1<<20)
		if err != nil {
			b.Fatal(err)
		}
		if recs, err = elog.DecodeBatches(recs[:0], res.Data, off); err != nil {
			b.Fatal(err)
		}
		n += int64(len(recs))
		off, buf = res.NextOffset, res.Data
		if n%200_000 < int64(len(recs)) {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		}
	}
	if n < end {
		b.Fatalf("replayed %d records of %d", n, end)
	}
	return time.Since(start), peak
}

// resetPeakRSS starts the kernel's count of the process's peak resident
// set (VmHWM) again from its current size.
func resetPeakRSS(b *testing.B) {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Fatalf("reset peak RSS: %v", err)
	}
}

// peakRSS is the process's peak resident set since resetPeakRSS.
func peakRSS(b *testing.B) uint64 {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				b.Fatalf("VmHWM %q: %v", v, err)
			}
			return kb << 10
		}
	}
	b.Fatal("no VmHWM in /proc/self/status")
	return 0
}

func newBenchStore(b *testing.B, bucket string) elog.ArchiveStore {
	st, err := s3store.New(context.Background(), s3store.Config{Bucket: bucket, Endpoint: testdb.S3Endpoint, PathStyle: true,
		AccessKeyID: testdb.S3AccessKey, SecretAccessKey: testdb.S3SecretKey})
	if err != nil {
		b.Fatal(err)
	}
	return st
}
