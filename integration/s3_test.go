package integration

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/eddy-cdc/eddy/connect"
	"github.com/eddy-cdc/eddy/internal/testdb"
)

// s3SinkConfig is an s3-sink connector into bucket of the shared
// versitygw: flattened Parquet in daily partitions, files of 300 records
// or two seconds of commit time.
func s3SinkConfig(name, bucket string, topics []string) string {
	return fmt.Sprintf(`  - name: %s
    plugin: s3-sink
    topics: [%s]
    config:
      bucket: %s
      endpoint: %s
      path_style: true
      access_key_id: %s
      secret_access_key: %s
      prefix: cdc
      format: parquet
      flatten: true
      path: "$${table}/dt=$${yyyy}-$${MM}-$${dd}"
      flush_records: 300
      rotate_interval: 2s
`, name, strings.Join(topics, ", "), bucket, testdb.S3Endpoint, testdb.S3AccessKey, testdb.S3SecretKey)
}

// latestRows is what a user's query of the flattened files says a table
// holds: the last change of each key since the last truncate (a snapshot
// taken again begins with one), deletes left out.
func latestRows(t *testing.T, dir, table, keys, cols string) []string {
	t.Helper()
	files := filepath.Join(dir, "cdc", table, "*", "*.parquet")
	if m, _ := filepath.Glob(files); len(m) == 0 {
		return nil
	}
	r := testdb.DuckDB(t, fmt.Sprintf(`WITH f AS (SELECT * FROM read_parquet('%s', union_by_name = true)),
		cut AS (SELECT coalesce(max(__position), '') AS p FROM f WHERE __op = 't')
		SELECT %s FROM (
			SELECT f.*, row_number() OVER (PARTITION BY %s ORDER BY __position DESC) AS latest
			FROM f, cut WHERE __position > cut.p)
		WHERE latest = 1 AND __op <> 'd' ORDER BY %s`, files, cols, keys, keys))
	return r.Lines("<null>")
}

// PostgreSQL → log → S3 with `eddy run` killed -9 at 20 random points
// while writers change tables of several shapes (narrow, wide of many
// types, a composite key, an empty one) and a column is added mid-stream:
// the Parquet files, read with DuckDB as a user would (the last change of
// each key), equal the tables, and no change is in them twice. Then a new
// sink, never interrupted, reads the same log into another bucket: it
// makes the same objects with the same bytes.
func TestPostgresToS3KillAndReplay(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test")
	}
	dsn, conn := testDB(t)
	ctx := context.Background()
	tables := []string{"orders", "customers", "items"}
	shopShapes(t, conn, 1000)
	bucketA, bucketB := testdb.S3Bucket(t, "kill"), testdb.S3Bucket(t, "replay")
	topics := []string{"shop.public.orders", "shop.public.customers", "shop.public.items", "shop.public.empty_t"}
	bin := buildEddy(t)
	dir := t.TempDir()
	cfg := eddyConfig(t, dir, fmt.Sprintf(`topics:
  - {name: shop.public.orders, partitions: 2}
connectors:
  - name: pg
    plugin: postgres-source
    config: {dsn: %q, tables: [orders, customers, items, empty_t], topic_prefix: shop, batch_size: 300}
%s`, dsn, s3SinkConfig("lake", bucketA, topics)))
	logPath := filepath.Join(dir, "eddy.log")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	txns := make([]int, 2)
	for i := range txns {
		wg.Add(1)
		go func() { defer wg.Done(); txns[i] = mixedLoad(dsn, tables, 1500, uint64(i+31), stop) }()
	}
	killRuns(t, bin, cfg, logPath, 20, 17, nil, func(round int) {
		if round == 10 { // a new schema version mid-stream
			if _, err := conn.Exec(ctx, "alter table orders add column extra text default 'added ✓'"); err != nil {
				t.Fatal(err)
			}
		}
	})
	close(stop)
	wg.Wait()

	p := startEddy(t, bin, cfg, logPath)
	<-p.up
	waitSlot(t, conn, "eddy_pg", 2*time.Minute, logPath)
	// Files end where the records say: a change three seconds of commit
	// time later stores everything before it (and is held itself).
	time.Sleep(3 * time.Second)
	if _, err := conn.Exec(ctx, `insert into orders (id, v) select g, -1 from generate_series(1000001, 1000010) g;
		insert into customers (id, v) values (1000001, -1); insert into items (id, v) values (1000001, -1)`); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"orders":    tableRows(t, conn, "select id, ' ', v, ' ', coalesce(note, '<null>') from orders where id < 1000000 order by id"),
		"customers": tableRows(t, conn, "select id, ' ', v, ' ', coalesce(note, '<null>'), ' ', name, ' ', born::text, ' ', score::text, ' ', ok::text from customers where id < 1000000 order by id"),
		"items":     tableRows(t, conn, "select id, ' ', grp, ' ', v, ' ', coalesce(note, '<null>') from items where id < 1000000 order by id, grp"),
	}
	query := map[string][2]string{
		"orders":    {"id", "id, v, coalesce(note, '<null>')"},
		"customers": {"id", "id, v, coalesce(note, '<null>'), name, born, score, ok"},
		"items":     {"id, grp", "id, grp, v, coalesce(note, '<null>')"},
	}
	client := testdb.S3Client(t, testdb.S3SecretKey)
	var objsA []testdb.S3Object
	deadline := time.Now().Add(2 * time.Minute)
	for {
		down := t.TempDir()
		objsA = testdb.S3Download(t, client, bucketA, down)
		var diffs []string
		for _, tb := range tables {
			got := latestRows(t, down, tb, query[tb][0], query[tb][1])
			if !slices.Equal(got, want[tb]) {
				diffs = append(diffs, fmt.Sprintf("%s: the files hold %d rows, the table %d (%s)", tb, len(got), len(want[tb]), diffOf(want[tb], got)))
			}
		}
		if len(diffs) == 0 {
			// Exactly once: no change of the log is in the files twice.
			for _, tb := range tables {
				r := testdb.DuckDB(t, fmt.Sprintf("SELECT count(*), count(DISTINCT (__partition, __offset)) FROM read_parquet('%s', union_by_name = true)",
					filepath.Join(down, "cdc", tb, "*", "*.parquet")))
				if *r.Rows[0][0] != *r.Rows[0][1] {
					t.Fatalf("%s: %s changes in the files, %s distinct", tb, *r.Rows[0][0], *r.Rows[0][1])
				}
			}
			// The column added mid-stream is in the rows changed after it
			// (rows the stream has not seen since keep what they were).
			r := testdb.DuckDB(t, fmt.Sprintf("SELECT count(*) FROM read_parquet('%s', union_by_name = true) WHERE extra = 'added ✓'",
				filepath.Join(down, "cdc", "orders", "*", "*.parquet")))
			if *r.Rows[0][0] == "0" {
				t.Fatalf("no change of orders carries the column added mid-stream")
			}
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logPath)
			for _, tb := range tables { // the changes of the first key that differs, as the files hold them
				got := latestRows(t, down, tb, query[tb][0], query[tb][1])
				if _, keys := firstDiff(want[tb], got); len(keys) > 0 {
					r := testdb.DuckDB(t, fmt.Sprintf("SELECT __op, __position, __partition, __offset, __source_ts_ms, id, v FROM read_parquet('%s', union_by_name = true) WHERE id IN (%d, %d) ORDER BY id, __partition, __offset",
						filepath.Join(down, "cdc", tb, "*", "*.parquet"), keys[0], keys[len(keys)-1]))
					for _, line := range r.Lines("NULL") {
						diffs = append(diffs, tb+": "+line)
					}
				}
			}
			t.Fatalf("the files never matched the tables:\n%s\n%.3000s", strings.Join(diffs, "\n"), b)
		}
		time.Sleep(time.Second)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.cmd.Wait()

	// The same log, read again by a sink nobody interrupts.
	cfgB := eddyConfig(t, dir, "connectors:\n"+s3SinkConfig("lake-again", bucketB, topics))
	pb := startEddy(t, bin, cfgB, logPath)
	defer pb.kill()
	<-pb.up
	deadline = time.Now().Add(2 * time.Minute)
	for {
		objsB := testdb.S3Download(t, client, bucketB, t.TempDir())
		if sameObjects(objsA, objsB) {
			t.Logf("%d transactions, 20 kills: %d objects, the same after a run without kills", txns[0]+txns[1], len(objsA))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the uninterrupted run made other objects:\n%s", objectDiff(objsA, objsB))
		}
		time.Sleep(time.Second)
	}
}

func diffOf(src, files []string) string {
	d, _ := firstDiff(src, files)
	if d == "" {
		return "one is longer"
	}
	return d
}

func sameObjects(a, b []testdb.S3Object) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Key != b[i].Key || a[i].SHA256 != b[i].SHA256 {
			return false
		}
	}
	return true
}

func objectDiff(a, b []testdb.S3Object) string {
	in := map[string]string{}
	for _, o := range b {
		in[o.Key] = o.SHA256
	}
	var out []string
	for _, o := range a {
		switch sum, ok := in[o.Key]; {
		case !ok:
			out = append(out, "only after kills: "+o.Key)
		case sum != o.SHA256:
			out = append(out, "other bytes: "+o.Key)
		}
		delete(in, o.Key)
	}
	for k := range in {
		out = append(out, "only without kills: "+k)
	}
	slices.Sort(out)
	return strings.Join(out, "\n")
}

// throttler stands between the sink and a versitygw and, while on,
// answers every request 503 SlowDown as S3 does when it throttles
// (versitygw never throttles); otherwise requests pass through untouched,
// signed for the address the sink dialled.
type throttler struct {
	on, refused atomic.Int64
	srv         *http.Server
	addr        string
}

func newThrottler(t *testing.T, backend string) *throttler {
	t.Helper()
	u, _ := url.Parse(backend)
	proxy := httputil.NewSingleHostReverseProxy(u)
	proxy.ErrorLog = log.New(io.Discard, "", 0) // 502 while the server is down
	th := &throttler{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	th.addr = "http://" + l.Addr().String()
	th.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if th.on.Load() == 1 {
			th.refused.Add(1)
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`)
			return
		}
		proxy.ServeHTTP(w, r)
	})}
	go th.srv.Serve(l)
	t.Cleanup(func() { th.srv.Close() })
	return th
}

// An object store that throttles (503 SlowDown), then is down for ten
// seconds mid-stream, is the store's fault: the sink retries, its status
// says so, nothing is dead-lettered, and afterwards the files hold every
// change once.
func TestS3ThrottledAndDownMidStream(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test")
	}
	dsn, conn := testDB(t)
	ctx := context.Background()
	if _, err := conn.Exec(ctx, `create table orders (id int primary key, v bigint not null, note text);
		insert into orders select g, 0, 'initial' from generate_series(1, 500) g`); err != nil {
		t.Fatal(err)
	}
	srv := testdb.NewS3Server(t)
	bucket := srv.Bucket("faults")
	th := newThrottler(t, srv.Endpoint())
	p := startPipeline(t, t.TempDir(), fmt.Sprintf(`
connectors:
  - name: pg
    plugin: postgres-source
    config: {dsn: %q, tables: [orders], topic_prefix: shop}
  - name: lake
    plugin: s3-sink
    topics: [shop.public.orders]
    errors: {tolerance: all, dead_letter_topic: lake.dlq, retry_max_delay: 500ms, retry_timeout: 5m}
    config: {bucket: %s, endpoint: %q, path_style: true, access_key_id: %s, secret_access_key: %s, prefix: cdc,
             format: parquet, flatten: true, path: "$${table}/p=$${partition}", flush_records: 50, rotate_interval: 1s}
`, dsn, bucket, th.addr, testdb.S3AccessKey, testdb.S3SecretKey))
	write := func(n int) {
		for i := range n {
			if _, err := conn.Exec(ctx, "update orders set v = v + 1, note = md5(random()::text) where id = $1", 1+i%500); err != nil {
				t.Fatal(err)
			}
		}
	}
	retrying := func(what, why string) string {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			st, _ := p.w.Status("lake")
			if st.Tasks[0].State != connect.StateRunning {
				t.Fatalf("the sink is %s: %s", st.Tasks[0].State, st.Tasks[0].Trace)
			}
			if strings.Contains(st.Tasks[0].Trace, "retrying") && strings.Contains(st.Tasks[0].Trace, why) {
				return st.Tasks[0].Trace
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the status never said the sink was retrying: %+v", what, st.Tasks[0])
			}
		}
	}
	write(300)
	th.on.Store(1)
	write(600)
	retrying("throttled", "SlowDown")
	time.Sleep(2 * time.Second)
	th.on.Store(0)
	write(300)
	srv.Stop()
	write(600)
	trace := retrying("down", "StatusCode: 502")
	time.Sleep(10 * time.Second)
	srv.Start()
	write(300)
	waitSlot(t, conn, "eddy_pg", time.Minute)
	time.Sleep(1500 * time.Millisecond)
	if _, err := conn.Exec(ctx, "insert into orders values (1000001, -1, 'ends the files before it')"); err != nil {
		t.Fatal(err)
	}
	want := tableRows(t, conn, "select id, ' ', v, ' ', note from orders where id < 1000000 order by id")
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Second) {
		down := t.TempDir()
		testdb.S3Download(t, srv.Client(), bucket, down)
		got := latestRows(t, down, "orders", "id", "id, v, note")
		if slices.Equal(got, want) {
			r := testdb.DuckDB(t, fmt.Sprintf("SELECT count(*), count(DISTINCT (__partition, __offset)) FROM read_parquet('%s')", filepath.Join(down, "cdc", "orders", "*", "*.parquet")))
			if *r.Rows[0][0] != *r.Rows[0][1] {
				t.Fatalf("%s changes in the files, %s distinct", *r.Rows[0][0], *r.Rows[0][1])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the files never matched the table: %s (status while down: %s)", diffOf(want, got), trace)
		}
	}
	noDeadLetters(t, p, "lake.dlq")
	if th.refused.Load() == 0 {
		t.Fatal("nothing was throttled")
	}
	t.Logf("%d requests throttled; while down the status said %q", th.refused.Load(), trace)
}
