package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	elog "github.com/eddy-cdc/eddy/log"
)

// Benchmarks of the postgres source against pg_recvlogical, PostgreSQL's
// own client, draining an identical slot to /dev/null in the same run:
//
//	go test -run '^$' -bench Postgres -benchtime 1x ./integration/
//
// Eddy's figure includes decoding, Avro serialization through the
// registry and the durable (fsync always) append.

func pgBin(name string) string { return filepath.Join("/usr/lib/postgresql/15/bin", name) }

// benchSlots creates the table, the publication and two slots at the same
// point: eddy_pg for Eddy, recv for pg_recvlogical.
func benchSlots(b *testing.B, conn *pgx.Conn) {
	ctx := context.Background()
	for _, q := range []string{
		"create table orders (id bigint primary key, v bigint not null, note text)",
		"create publication eddy_pg for table orders",
		"select pg_create_logical_replication_slot('eddy_pg', 'pgoutput')",
		"select pg_create_logical_replication_slot('recv', 'pgoutput')",
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			b.Fatalf("%s: %v", q, err)
		}
	}
}

func currentLSN(conn *pgx.Conn) string {
	var lsn string
	conn.QueryRow(context.Background(), "select pg_current_wal_lsn()::text").Scan(&lsn)
	return lsn
}

// drainRecvlogical times pg_recvlogical reading slot recv up to endpos.
func drainRecvlogical(b *testing.B, dsn, endpos string) time.Duration {
	start := time.Now()
	out, err := exec.Command(pgBin("pg_recvlogical"), "-d", dsn, "--slot", "recv", "--start",
		"-o", "proto_version=1", "-o", "publication_names=eddy_pg", "-E", endpos, "-f", "/dev/null").CombinedOutput()
	if err != nil {
		b.Fatalf("pg_recvlogical: %v\n%s", err, out)
	}
	return time.Since(start)
}

// drainEddy times the postgres source reading slot eddy_pg until it has
// confirmed endpos: every change decoded, serialized and durable.
func drainEddy(b *testing.B, dsn, endpos string, conn *pgx.Conn) time.Duration {
	start := time.Now()
	startPipeline(b, b.TempDir(), fmt.Sprintf(`
connectors:
  - name: pg
    plugin: postgres-source
    config: {dsn: %q, tables: [orders], topic_prefix: shop, snapshot: never}
`, dsn))
	for {
		var done bool
		conn.QueryRow(context.Background(), "select confirmed_flush_lsn >= $1::pg_lsn from pg_replication_slots where slot_name = 'eddy_pg'", endpos).Scan(&done)
		if done {
			return time.Since(start)
		}
		if time.Since(start) > 10*time.Minute {
			b.Fatal("eddy did not drain its slot in 10 minutes")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func reportVs(b *testing.B, unit string, n int, recv, eddy time.Duration) {
	b.ReportMetric(float64(n)/recv.Seconds(), "recvlogical-"+unit+"/s")
	b.ReportMetric(float64(n)/eddy.Seconds(), "eddy-"+unit+"/s")
	b.ReportMetric(recv.Seconds()/eddy.Seconds(), "x-of-recvlogical")
}

// A backlog of 200,000 single-row transactions.
func BenchmarkPostgresBacklogSmallTransactions(b *testing.B) {
	dsn, conn := testDB(b)
	benchSlots(b, conn)
	ctx := context.Background()
	const n = 200_000
	if _, err := conn.Exec(ctx, `create procedure load(n int) language plpgsql as $$
		begin for i in 1..n loop insert into orders values (i, 0, md5(i::text)); commit; end loop; end $$`); err != nil {
		b.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "call load($1)", n); err != nil {
		b.Fatal(err)
	}
	end := currentLSN(conn)
	b.ResetTimer()
	recv := drainRecvlogical(b, dsn, end)
	eddy := drainEddy(b, dsn, end, conn)
	reportVs(b, "txns", n, recv, eddy)
}

// One transaction of 1,000,000 rows.
func BenchmarkPostgresBacklogLargeTransaction(b *testing.B) {
	dsn, conn := testDB(b)
	benchSlots(b, conn)
	const n = 1_000_000
	if _, err := conn.Exec(context.Background(), "insert into orders select g, 0, md5(g::text) from generate_series(1, $1) g", n); err != nil {
		b.Fatal(err)
	}
	end := currentLSN(conn)
	b.ResetTimer()
	// Eddy first here (pg_recvlogical first for the small transactions), so
	// neither always finds the other's warm caches.
	eddy := drainEddy(b, dsn, end, conn)
	recv := drainRecvlogical(b, dsn, end)
	reportVs(b, "rows", n, recv, eddy)
}

// Live: 2,000 single-row transactions a second for 10 s; the latency from
// commit (source.ts_ms) to the record being readable in the log, which is
// only after its fsync.
func BenchmarkPostgresLiveLatency(b *testing.B) {
	dsn, conn := testDB(b)
	ctx := context.Background()
	if _, err := conn.Exec(ctx, "create table orders (id bigint primary key, v bigint not null, note text)"); err != nil {
		b.Fatal(err)
	}
	p := startPipeline(b, b.TempDir(), fmt.Sprintf(`
topics:
  - {name: shop.public.orders, partitions: 1}
connectors:
  - name: pg
    plugin: postgres-source
    config: {dsn: %q, tables: [orders], topic_prefix: shop, format: json}
`, dsn))
	time.Sleep(500 * time.Millisecond)
	tp, err := p.log.EnsureTopic("shop.public.orders", elog.TopicConfig{Partitions: 1})
	if err != nil {
		b.Fatal(err)
	}
	part, _ := tp.Partition(0)
	const rate, secs = 2000, 10
	lat := make(chan []time.Duration)
	go func() { // the reader: each record's commit-to-durable latency
		var out []time.Duration
		off := int64(0)
		deadline := time.Now().Add(secs*time.Second + 20*time.Second)
		for len(out) < rate*secs && time.Now().Before(deadline) {
			wctx, cancel := context.WithTimeout(ctx, time.Second)
			part.Wait(wctx, off)
			cancel()
			now := time.Now()
			res, err := part.Fetch(off, 1<<20)
			if err != nil || len(res.Data) == 0 {
				continue
			}
			recs, _ := elog.DecodeBatches(nil, res.Data, off)
			for _, r := range recs {
				var v struct {
					Source struct {
						TsMs int64 `json:"ts_ms"`
					} `json:"source"`
				}
				if json.Unmarshal(r.Value, &v) == nil && v.Source.TsMs > 0 {
					out = append(out, now.Sub(time.UnixMilli(v.Source.TsMs)))
				}
			}
			off = res.NextOffset
		}
		lat <- out
	}()
	w, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close(ctx)
	b.ResetTimer()
	start := time.Now()
	for i := range rate * secs {
		if d := time.Until(start.Add(time.Duration(i) * time.Second / rate)); d > 0 {
			time.Sleep(d)
		}
		if _, err := w.Exec(ctx, "insert into orders values ($1, 0, 'x')", i); err != nil {
			b.Fatal(err)
		}
	}
	achieved := float64(rate*secs) / time.Since(start).Seconds()
	ls := <-lat
	if len(ls) == 0 {
		b.Fatal("no records read")
	}
	slices.Sort(ls)
	q := func(f float64) float64 { return float64(ls[int(f*float64(len(ls)-1))].Microseconds()) / 1000 }
	b.ReportMetric(achieved, "txns/s")
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(float64(len(ls)), "records")
}

// postgres-sink: 200,000 rows of 10 columns from the log into an empty
// target, against a plain COPY of the same rows into an empty table in the
// same run.
func BenchmarkPostgresSinkUpsert(b *testing.B) {
	srcDSN, src := testDB(b)
	dstDSN, dst := testDB(b)
	ctx := context.Background()
	const n = 200_000
	if _, err := src.Exec(ctx, `create table wide (id bigint primary key, a int, b bigint, c text, d text, e numeric(12,2), f timestamptz, g boolean, h double precision, i text)`); err != nil {
		b.Fatal(err)
	}
	if _, err := src.Exec(ctx, `insert into wide select g, g % 1000, g * 7, md5(g::text), 'constant', g / 3.0, now(), g % 2 = 0, g * 1.5, repeat('x', 20) from generate_series(1, $1) g`, n); err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	snapshotIntoLog(b, dir, srcDSN, "wide", n)

	// A plain COPY of the same rows, as the baseline.
	rows, err := src.Query(ctx, "select * from wide")
	if err != nil {
		b.Fatal(err)
	}
	var all [][]any
	for rows.Next() {
		v, _ := rows.Values()
		all = append(all, v)
	}
	rows.Close()
	if _, err := dst.Exec(ctx, `create table copied (id bigint primary key, a int, b bigint, c text, d text, e numeric(12,2), f timestamptz, g boolean, h double precision, i text)`); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	if _, err := dst.CopyFrom(ctx, pgx.Identifier{"copied"}, []string{"id", "a", "b", "c", "d", "e", "f", "g", "h", "i"}, pgx.CopyFromRows(all)); err != nil {
		b.Fatal(err)
	}
	copyTook := time.Since(start)

	start = time.Now()
	p := startPipeline(b, dir, fmt.Sprintf(`
connectors:
  - name: replica
    plugin: postgres-sink
    topics: [shop.public.wide]
    config: {dsn: %q}
`, dstDSN))
	waitSinkDone(b, p, n, func() (got int64) {
		dst.QueryRow(ctx, "select coalesce(sum(next_offset), 0) from eddy_offsets where connector = 'replica'").Scan(&got)
		return got
	})
	sinkTook := time.Since(start)
	b.ReportMetric(n/copyTook.Seconds(), "copy-rows/s")
	b.ReportMetric(n/sinkTook.Seconds(), "sink-rows/s")
	b.ReportMetric(copyTook.Seconds()/sinkTook.Seconds(), "x-of-copy")
}

// mysql-sink: 100,000 rows of 5 columns from the log into MariaDB.
func BenchmarkMySQLSinkUpsert(b *testing.B) {
	srcDSN, src := testDB(b)
	myDSN, my := mariaDBB(b)
	ctx := context.Background()
	const n = 100_000
	if _, err := src.Exec(ctx, `create table rows5 (id bigint primary key, a int, c text, e numeric(12,2), f timestamptz)`); err != nil {
		b.Fatal(err)
	}
	if _, err := src.Exec(ctx, `insert into rows5 select g, g % 1000, md5(g::text), g / 3.0, now() from generate_series(1, $1) g`, n); err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	snapshotIntoLog(b, dir, srcDSN, "rows5", n)
	b.ResetTimer()
	start := time.Now()
	p := startPipeline(b, dir, fmt.Sprintf(`
connectors:
  - name: replica
    plugin: mysql-sink
    topics: [shop.public.rows5]
    config: {dsn: %q}
`, myDSN))
	waitSinkDone(b, p, n, func() (got int64) {
		if res, err := my.Execute("select coalesce(sum(next_offset), 0) from eddy_offsets where connector = 'replica'"); err == nil {
			got, _ = res.GetInt(0, 0)
		}
		return got
	})
	b.ReportMetric(n/time.Since(start).Seconds(), "sink-rows/s")
}

// waitSinkDone returns once the sink replica has stored n as the sum of
// its eddy_offsets (as offsetSum reads it); it fails if the sink does.
func waitSinkDone(b *testing.B, p *pipeline, n int64, offsetSum func() int64) {
	b.Helper()
	for deadline := time.Now().Add(10 * time.Minute); offsetSum() < n; {
		if st, _ := p.w.Status("replica"); st.Tasks[0].State == "FAILED" {
			b.Fatalf("the sink failed: %s", st.Tasks[0].Trace)
		}
		if time.Now().After(deadline) {
			b.Fatal("the sink did not finish")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// snapshotIntoLog puts the n rows of table into a log in dir (topic
// shop.public.<table>) with an initial_only snapshot, and closes the log.
func snapshotIntoLog(b *testing.B, dir, dsn, table string, n int64) {
	b.Helper()
	p := startPipeline(b, dir, fmt.Sprintf(`
connectors:
  - name: pg
    plugin: postgres-source
    config: {dsn: %q, tables: [%s], topic_prefix: shop, snapshot: initial_only}
`, dsn, table))
	tp, err := p.log.EnsureTopic("shop.public."+table, elog.TopicConfig{})
	if err != nil {
		b.Fatal(err)
	}
	part, _ := tp.Partition(0)
	for deadline := time.Now().Add(5 * time.Minute); part.HighWatermark() < n; {
		if time.Now().After(deadline) {
			b.Fatal("the snapshot did not finish")
		}
		if st, _ := p.w.Status("pg"); st.Tasks[0].State == "FAILED" {
			b.Fatalf("the source failed: %s", st.Tasks[0].Trace)
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.stop(b)
}
