package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/eddy-cdc/eddy/internal/testdb"
)

// The S3 sink from the log, beside plain PutObject calls of the same
// bytes in the same run:
//
//	go test -run '^$' -bench S3Sink -benchtime 1x ./integration/
//
// The log holds 1,000,000 change events of a table of 10 columns (a
// PostgreSQL snapshot). `eddy run` with only an s3-sink reads them into
// the test setup's versitygw, 100,000 records a file; the figure runs
// from its start until the last object is stored. Then the same objects,
// held in memory, are uploaded again by PutObject calls, as many at once
// as the sink's upload_concurrency. flush_bytes is 128 MiB, and the
// process's peak RSS is reported beside it.

const s3BenchRecords = 1_000_000

// s3BenchLog fills a log with the events, once per run.
func s3BenchLog(b *testing.B, bin string) string {
	b.Helper()
	dsn, conn := testDB(b)
	ctx := context.Background()
	if _, err := conn.Exec(ctx, `create table events (id bigint primary key, a int not null, b bigint, c double precision, d numeric(12,2),
		e text, f varchar(32), g boolean, h timestamptz, i date)`); err != nil {
		b.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `insert into events select g, g % 1000, g * 7, g / 3.0, (g % 100000) / 100.0, md5(g::text), 'cat-' || (g % 17), g % 2 = 0,
			'2026-01-01'::timestamptz + g * interval '1 second', '2026-01-01'::date + (g % 365) from generate_series(1, $1) g`, s3BenchRecords); err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	cfg := eddyConfig(b, dir, fmt.Sprintf(`connectors:
  - name: pg
    plugin: postgres-source
    config: {dsn: %q, tables: [events], topic_prefix: bench, batch_size: 10000}
`, dsn))
	logPath := filepath.Join(dir, "eddy.log")
	p := startEddy(b, bin, cfg, logPath)
	<-p.up
	for start := time.Now(); topicRecords(logPath, "bench.public.events") < s3BenchRecords; time.Sleep(200 * time.Millisecond) {
		if time.Since(start) > 5*time.Minute {
			p.kill()
			log, _ := os.ReadFile(logPath)
			b.Fatalf("the snapshot did not reach the log in 5 minutes; eddy said:\n%.4000s", log)
		}
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.cmd.Wait()
	return dir
}

func BenchmarkS3Sink(b *testing.B) {
	bin := buildEddy(b)
	dir := s3BenchLog(b, bin)
	client := testdb.S3Client(b, testdb.S3SecretKey)
	for _, format := range []string{"parquet", "jsonl"} {
		b.Run(format, func(b *testing.B) {
			for range b.N {
				bucket := testdb.S3Bucket(b, "bench-"+format)
				cfg := eddyConfig(b, dir, fmt.Sprintf(`connectors:
  - name: lake-%s-%d
    plugin: s3-sink
    topics: [bench.public.events]
    config: {bucket: %s, endpoint: %s, path_style: true, access_key_id: %s, secret_access_key: %s,
             format: %s, flatten: true, flush_records: 100000, flush_bytes: 134217728}
`, format, time.Now().UnixNano(), bucket, testdb.S3Endpoint, testdb.S3AccessKey, testdb.S3SecretKey, format))
				logPath := filepath.Join(b.TempDir(), "eddy.log")
				p := startEddy(b, bin, cfg, logPath)
				<-p.up
				start := time.Now()
				var objs []string
				var size int64
				for {
					objs, size = listObjects(b, client, bucket)
					if len(objs) == s3BenchRecords/100_000 {
						break
					}
					if time.Since(start) > 5*time.Minute {
						p.kill()
						log, _ := os.ReadFile(logPath)
						b.Fatalf("%d objects after 5 minutes\n%.3000s", len(objs), log)
					}
					time.Sleep(20 * time.Millisecond)
				}
				took := time.Since(start)
				rss := peakRSS(p.cmd.Process.Pid)
				p.cmd.Process.Signal(syscall.SIGTERM)
				p.cmd.Wait()
				put := putAgain(b, client, bucket, 4)
				b.ReportMetric(float64(s3BenchRecords)/took.Seconds(), "records/s")
				b.ReportMetric(float64(size)/took.Seconds()/1e6, "sink_MB/s")
				b.ReportMetric(float64(size)/put.Seconds()/1e6, "put_MB/s")
				b.ReportMetric(put.Seconds()/took.Seconds(), "sink/put")
				b.ReportMetric(float64(rss>>20), "peak_RSS_MiB")
				b.Logf("%s: %d records in %s (%.0f records/s), %d objects of %.1f MB; plain PutObject of the same bytes %s; peak RSS %d MiB",
					format, s3BenchRecords, took.Round(time.Millisecond), float64(s3BenchRecords)/took.Seconds(), len(objs), float64(size)/1e6, put.Round(time.Millisecond), rss>>20)
			}
		})
	}
}

func listObjects(b *testing.B, c *s3.Client, bucket string) ([]string, int64) {
	var keys []string
	var size int64
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: &bucket})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		for _, o := range page.Contents {
			keys = append(keys, *o.Key)
			size += aws.ToInt64(o.Size)
		}
	}
	return keys, size
}

// putAgain reads the bucket's objects into memory, then times plain
// PutObject calls of them under other keys, conc at once.
func putAgain(b *testing.B, c *s3.Client, bucket string, conc int) time.Duration {
	ctx := context.Background()
	objs := testdb.S3Objects(b, c, bucket)
	start := time.Now()
	var wg sync.WaitGroup
	slots := make(chan struct{}, conc)
	for _, o := range objs {
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: aws.String("again/" + o.Key),
				Body: bytes.NewReader(o.Body), ContentLength: aws.Int64(int64(len(o.Body)))}); err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
	return time.Since(start)
}
