package s3store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eddy-cdc/eddy/internal/testdb"
	elog "github.com/eddy-cdc/eddy/log"
	"github.com/eddy-cdc/eddy/log/s3store"
)

func newStore(t *testing.T, srv *testdb.S3Server, bucket string) *s3store.Store {
	t.Helper()
	st, err := s3store.New(context.Background(), s3store.Config{Bucket: bucket, Prefix: "/arch/", Endpoint: srv.Endpoint(), PathStyle: true,
		AccessKeyID: testdb.S3AccessKey, SecretAccessKey: testdb.S3SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// The store's own operations against a real S3 server (versitygw).
func TestStoreOperations(t *testing.T) {
	srv := testdb.NewS3Server(t)
	st := newStore(t, srv, srv.Bucket("ops"))
	ctx := context.Background()
	body := bytes.Repeat([]byte("0123456789"), 1000)
	if err := st.Put(ctx, "t/0/a.log", bytes.NewReader(body), int64(len(body)), sha256.Sum256(body)); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(body)
	stat, err := st.Stat(ctx, "t/0/a.log")
	if err != nil || stat.Size != int64(len(body)) || stat.SHA256 != fmt.Sprintf("%x", sum) {
		t.Fatalf("stat %+v, %v", stat, err)
	}
	p := make([]byte, 25)
	if n, err := st.ReadAt(ctx, "t/0/a.log", p, 9995); n != 5 || !errors.Is(err, io.EOF) || string(p[:5]) != "56789" {
		t.Fatalf("read past the end: %d %v %q", n, err, p[:n])
	}
	if n, err := st.ReadAt(ctx, "t/0/a.log", p, 3); n != 25 || err != nil || string(p) != string(body[3:28]) {
		t.Fatalf("ranged read: %d %v %q", n, err, p)
	}
	// A body that does not match its checksum is refused by the server.
	if err := st.Put(ctx, "t/0/b.log", bytes.NewReader(body), int64(len(body)), sha256.Sum256([]byte("other"))); err == nil {
		t.Fatal("a body with a wrong checksum was stored")
	}
	if _, err := st.Stat(ctx, "t/0/b.log"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stat of a missing object: %v", err)
	}
	if err := st.Delete(ctx, "t/0/a.log"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Stat(ctx, "t/0/a.log"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stat after delete: %v", err)
	}
	objs := testdb.S3Objects(t, srv.Client(), "ops")
	if len(objs) != 0 {
		t.Fatalf("left %v", objs)
	}
}

// The object store stopped for 10 s during archive runs: the runs fail
// naming the store, local retention keeps every unarchived segment (and
// says how much waits), reads below the local start fail with an error
// that names the store and the segment, never wrong data; once the store
// is back the next run archives everything and every record reads back.
func TestStoreDownDuringArchiveRuns(t *testing.T) {
	srv := testdb.NewS3Server(t)
	st := newStore(t, srv, srv.Bucket("down"))
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	tick := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	l, err := elog.Open(t.TempDir(), elog.WithClock(clock), elog.WithCleanerInterval(0), elog.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
		elog.WithArchive(func(string, elog.TopicConfig) (elog.ArchivePolicy, bool) {
			return elog.ArchivePolicy{StoreName: "lake", Store: st, After: time.Minute, Retention: -1, LocalRetention: 0, LocalRetentionBytes: -1}, true
		}, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	topic, err := l.CreateTopic("t", elog.TopicConfig{SegmentBytes: 2048})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := topic.Partition(0)
	var want []string
	appendSome := func(n int) {
		for range n {
			v := fmt.Sprintf("%05d-%s", len(want), strings.Repeat("é", len(want)%30))
			want = append(want, v)
			if _, _, err := p.Append(context.Background(), []elog.Record{{Key: []byte("k"), Value: []byte(v)}}); err != nil {
				t.Fatal(err)
			}
			tick(time.Second)
		}
	}
	ctx := context.Background()
	appendSome(200)
	tick(time.Hour)
	if _, err := p.Archive(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := p.ApplyRetention(); err != nil || p.LocalStartOffset() == 0 {
		t.Fatalf("local start %d: %v", p.LocalStartOffset(), err)
	}
	archivedTo := p.LocalStartOffset()
	appendSome(200)
	tick(time.Hour)
	srv.Stop()
	down := time.Now()
	for time.Since(down) < 10*time.Second {
		run, err := p.Archive(ctx)
		if err == nil || run.Segments != 0 || !strings.Contains(err.Error(), st.String()) {
			t.Fatalf("an archive run with the store down: %+v, %v", run, err)
		}
		if n, err := p.ApplyRetention(); err != nil || n != 0 {
			t.Fatalf("retention deleted %d segments the archive does not hold: %v", n, err)
		}
		if _, err := p.Fetch(0, 1<<20); err == nil || !strings.Contains(err.Error(), st.String()) || !strings.Contains(err.Error(), "segment ") {
			t.Fatalf("a read below the local start with the store down: %v", err)
		}
		time.Sleep(time.Second)
	}
	if a := p.Stats().Archive; a == nil || a.WaitingBytes == 0 || a.PendingSegments == 0 {
		t.Fatalf("archive stats with the store down: %+v", a)
	}
	srv.Start()
	if run, err := p.Archive(ctx); err != nil || run.Segments == 0 {
		t.Fatalf("the run after the store came back: %+v, %v", run, err)
	}
	if _, err := p.ApplyRetention(); err != nil || p.LocalStartOffset() <= archivedTo {
		t.Fatalf("local start %d after the store came back: %v", p.LocalStartOffset(), err)
	}
	var got []string
	for off := int64(0); off < p.HighWatermark(); {
		res, err := p.Fetch(off, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		recs, err := elog.DecodeBatches(nil, res.Data, off)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			got = append(got, string(r.Value))
		}
		off = res.NextOffset
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("read %d records back, want %d", len(got), len(want))
	}
}
