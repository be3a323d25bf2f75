package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eddy-cdc/eddy/connect"
	"github.com/eddy-cdc/eddy/connect/connecttest"
	"github.com/eddy-cdc/eddy/internal/testdb"
	elog "github.com/eddy-cdc/eddy/log"
	"github.com/eddy-cdc/eddy/outbox/clean"
	"github.com/eddy-cdc/eddy/outbox/router"
	"github.com/eddy-cdc/eddy/registry"
	s3sink "github.com/eddy-cdc/eddy/sinks/s3"
	sqlsink "github.com/eddy-cdc/eddy/sinks/sql"
	mysqlsource "github.com/eddy-cdc/eddy/sources/mysql"
	"github.com/eddy-cdc/eddy/sources/postgres"
)

// testDB creates a database of its own for a test and drops it (and any
// slot left in it) after; conn is connected to it until the test ends.
func testDB(t testing.TB) (dsn string, conn *pgx.Conn) {
	t.Helper()
	dsn = testdb.Postgres(t, "eddy_it")
	return dsn, testdb.Connect(t, dsn)
}

// pipeline runs eddy's worker over a log in dir with the connectors of
// yaml (postgres-source and mysql-source available).
type pipeline struct {
	log *elog.Log
	w   *connect.Worker
	reg *registry.Registry
}

func startPipeline(t testing.TB, dir, yaml string) *pipeline {
	t.Helper()
	path := filepath.Join(dir, "eddy.yaml")
	os.WriteFile(path, []byte("data_dir: "+filepath.Join(dir, "data")+"\n"+yaml), 0o644)
	cfg, err := connect.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	l, err := elog.Open(cfg.DataDir, elog.WithDefaults(cfg.LogDefaults()))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	reg, err := registry.Open(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	plugins := connect.Plugins{
		Sources: map[string]func(connect.Params, connect.Env) (connect.Source, error){"postgres-source": postgres.New, "mysql-source": mysqlsource.New},
		Sinks: map[string]func(connect.Params, connect.Env) (connect.Sink, error){
			"postgres-sink": sqlsink.NewPostgres, "mysql-sink": sqlsink.NewMySQL, "s3-sink": s3sink.New},
		Transforms: map[string]func(connect.Params, connect.Env) (connect.Transform, error){"outbox": router.New},
		Jobs:       map[string]func(connect.Params, connect.JobEnv) (connect.Job, error){"outbox-clean": clean.New},
	}
	var opts []connect.WorkerOption
	if _, test := t.(*testing.T); test { // a benchmark measures what runs in production
		opts = append(opts, connect.WithPoisonedFetches())
	}
	w, err := connect.NewWorker(ctx, l, registry.NewSerde(registry.Local(reg)), plugins, opts...)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cfg.Connectors {
		if err := w.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	for _, j := range cfg.Jobs {
		if err := w.AddJob(j); err != nil {
			t.Fatal(err)
		}
	}
	p := &pipeline{log: l, w: w, reg: reg}
	t.Cleanup(func() { p.stop(t) })
	return p
}

func (p *pipeline) stop(t testing.TB) {
	if p.w == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.w.Close(ctx); err != nil {
		t.Error(err)
	}
	p.log.Close()
	p.w = nil
}

// change is one decoded event of the log.
type change struct {
	partition int
	op        string
	before    map[string]any
	after     map[string]any
	key       int64
	snap      string
}

// readChanges decodes every record of topic, partition by partition in
// offset order (a key lives in one partition, so per-key order holds).
func (p *pipeline) readChanges(t testing.TB, topic string) []change {
	t.Helper()
	tp, err := p.log.Topic(topic)
	if err != nil {
		return nil
	}
	conv := connect.NewConverter(registry.NewSerde(registry.Local(p.reg)), "avro")
	var out []change
	for i := range tp.Partitions() {
		part, _ := tp.Partition(i)
		recs := readRecords(t, part)
		for j := range recs {
			r, err := conv.Decode(context.Background(), topic, i, &recs[j])
			if err != nil {
				t.Fatal(err)
			}
			c := change{partition: i}
			if k, ok := r.Key.(map[string]any); ok {
				c.key = connecttest.Int64(k["id"])
			}
			if r.Value == nil {
				c.op = "tombstone"
			} else {
				v := r.Value.(map[string]any)
				c.op = v["op"].(string)
				c.before, _ = v["before"].(map[string]any)
				c.after, _ = v["after"].(map[string]any)
				c.snap, _ = v["source"].(map[string]any)["snapshot"].(string)
			}
			out = append(out, c)
		}
	}
	return out
}

// replay applies the changes to a table image, checking that every key's
// version column goes up by exactly one from change to change: a change
// missed leaves a gap, a change doubled repeats a version.
func replay(t *testing.T, changes []change) map[int64]int64 {
	t.Helper()
	// A key lives in one partition, and a truncate is in every one: replay
	// each partition on its own and put the images together.
	byPart := map[int][]change{}
	for _, c := range changes {
		byPart[c.partition] = append(byPart[c.partition], c)
	}
	all := map[int64]int64{}
	for _, cs := range byPart {
		for k, v := range replayPartition(t, cs) {
			all[k] = v
		}
	}
	return all
}

func replayPartition(t *testing.T, changes []change) map[int64]int64 {
	t.Helper()
	state := map[int64]int64{}
	for _, c := range changes {
		switch c.op {
		case "r":
			// A snapshot a crash interrupted is taken again from the start,
			// so a key may be read twice; the last read stands.
			state[c.key] = connecttest.Int64(c.after["v"])
		case "c":
			if _, ok := state[c.key]; ok {
				t.Fatalf("create of key %d, which exists", c.key)
			}
			if v := connecttest.Int64(c.after["v"]); v != 0 {
				t.Fatalf("create of key %d at version %d", c.key, v)
			}
			state[c.key] = 0
		case "u":
			v := connecttest.Int64(c.after["v"])
			if prev, ok := state[c.key]; !ok || v != prev+1 {
				t.Fatalf("update of key %d to version %d after %d (present %v): a change missed or doubled", c.key, v, prev, ok)
			}
			state[c.key] = v
		case "t": // a truncate, or a snapshot taken again: the table starts over
			clear(state)
		case "d":
			if _, ok := state[c.key]; !ok {
				t.Fatalf("delete of key %d, which does not exist", c.key)
			}
			delete(state, c.key)
		}
	}
	return state
}

func tableImage(t *testing.T, conn *pgx.Conn, table string) map[int64]int64 {
	rows, err := conn.Query(context.Background(), "select id, v from "+table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	m := map[int64]int64{}
	for rows.Next() {
		var id, v int64
		rows.Scan(&id, &v)
		m[id] = v
	}
	return m
}

// writeLoad runs transactions of inserts, updates (v = v + 1) and deletes
// for d, from a connection of its own.
func writeLoad(t *testing.T, dsn string, d time.Duration, keys int) int {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Error(err)
		return 0
	}
	defer conn.Close(ctx)
	rng := rand.New(rand.NewPCG(1, 2))
	n := 0
	for end := time.Now().Add(d); time.Now().Before(end); n++ {
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Error(err)
			return n
		}
		for range 1 + rng.IntN(4) {
			id := 1 + rng.IntN(keys)
			switch rng.IntN(10) {
			case 0:
				_, err = tx.Exec(ctx, "delete from orders where id = $1", id)
			case 1, 2:
				_, err = tx.Exec(ctx, "insert into orders (id, v, note) values ($1, 0, 'new') on conflict (id) do update set v = orders.v + 1", id)
			default:
				_, err = tx.Exec(ctx, "update orders set v = v + 1, note = md5(random()::text) where id = $1", id)
			}
			if err != nil {
				t.Error(err)
				tx.Rollback(ctx)
				return n
			}
		}
		if err := tx.Commit(ctx); err != nil {
			t.Error(err)
			return n
		}
	}
	return n
}

func pgSourceYAML(dsn, extra string) string {
	return fmt.Sprintf(`
connectors:
  - name: pg
    plugin: postgres-source
    config:
      dsn: %q
      tables: [public.orders]
      topic_prefix: shop
      snapshot_chunk_rows: 700
      batch_size: 500
%s`, dsn, extra)
}

// A snapshot taken while writers change the table, then the stream: every
// row and every change in the log exactly once, and the log's image of the
// table equal to the table.
func TestPostgresSnapshotThenStreamUnderWrites(t *testing.T) {
	dsn, conn := testDB(t)
	ctx := context.Background()
	if _, err := conn.Exec(ctx, `create table orders (id int primary key, v bigint not null, note text);
		insert into orders select g, 0, 'initial' from generate_series(1, 5000) g`); err != nil {
		t.Fatal(err)
	}
	done := make(chan int)
	go func() { done <- writeLoad(t, dsn, 3*time.Second, 6000) }()
	time.Sleep(200 * time.Millisecond) // the snapshot starts while the writers run
	p := startPipeline(t, t.TempDir(), pgSourceYAML(dsn, ""))
	txns := <-done
	want := tableImage(t, conn, "orders")
	var got map[int64]int64
	deadline := time.Now().Add(60 * time.Second)
	for {
		if st, _ := p.w.Status("pg"); st.Tasks[0].State == connect.StateFailed {
			t.Fatalf("the connector failed: %s", st.Tasks[0].Trace)
		}
		changes := p.readChanges(t, "shop.public.orders")
		got = replay(t, changes)
		if len(got) == len(want) && fmt.Sprint(got) == fmt.Sprint(want) {
			break
		}
		if time.Now().After(deadline) {
			st, _ := p.w.Status("pg")
			t.Fatalf("after %d transactions the log's image has %d rows, the table %d; status %+v", txns, len(got), len(want), st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	changes := p.readChanges(t, "shop.public.orders")
	var reads, last int
	for _, c := range changes {
		if c.op == "r" {
			reads++
			if c.snap == "last" {
				last++
			}
		}
	}
	if reads == 0 || last != 1 {
		t.Fatalf("%d snapshot reads, %d marked last", reads, last)
	}
	if st, _ := p.w.Status("pg"); st.SourceLagBytes == nil || *st.SourceLagBytes < 0 {
		t.Fatalf("no source lag in the status: %+v", st)
	}
	t.Logf("%d transactions, %d events, %d snapshot reads", txns, len(changes), reads)
}
