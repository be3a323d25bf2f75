package integration

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/eddy-cdc/eddy/internal/testdb"
	"github.com/eddy-cdc/eddy/outbox"
	"github.com/eddy-cdc/eddy/outbox/router"
)

// outboxEvent is one routed event as a consumer reads it.
type outboxEvent struct {
	topic     string
	partition int
	key       string
	id, typ   string
	seq       int // the payload's per-aggregate sequence
}

// readEvents reads every record of the topics, with their event headers.
func (p *pipeline) readEvents(t *testing.T, topics ...string) []outboxEvent {
	t.Helper()
	var out []outboxEvent
	for _, name := range topics {
		tp, err := p.log.Topic(name)
		if err != nil {
			continue
		}
		for i := range tp.Partitions() {
			part, _ := tp.Partition(i)
			for _, r := range readRecords(t, part) {
				e := outboxEvent{topic: name, partition: i, key: string(r.Key)}
				for _, h := range r.Headers {
					switch h.Key {
					case router.HeaderEventID:
						e.id = string(h.Value)
					case "type":
						e.typ = string(h.Value)
					}
				}
				var v struct{ Seq int }
				if err := json.Unmarshal(r.Value, &v); err != nil {
					t.Fatalf("%s/%d@%d: value %q: %v", name, i, r.Offset, r.Value, err)
				}
				e.seq = v.Seq
				out = append(out, e)
			}
		}
	}
	return out
}

// routedIDs returns up to n ids of events already routed.
// cleaning runs the outbox-clean job named job over and over, beside the
// application, until the returned func is called; that runs it on until
// the table is empty (count says how many rows it holds), as it must be
// once capture has caught up.
func (p *pipeline) cleaning(t *testing.T, job string, count func() int) (finish func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if err := p.w.RunJob(ctx, job); err != nil && ctx.Err() == nil {
				t.Logf("outbox-clean: %v", err) // before the connector has its slot, say; the last run must succeed
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return func() {
		t.Helper()
		cancel()
		<-done
		t.Logf("%d outbox rows left when the application stopped", count())
		deadline := time.Now().Add(60 * time.Second)
		for n := count(); n > 0; n = count() {
			if time.Now().After(deadline) {
				t.Fatalf("%d outbox rows left after capture caught up", n)
			}
			if err := p.w.RunJob(context.Background(), job); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// checkEvents: every committed event exactly once on its topic, none of a
// rolled-back transaction, one aggregate's events in one partition in
// commit order.
func checkEvents(t *testing.T, got []outboxEvent, committed map[string]outboxEvent) {
	t.Helper()
	seen := map[string]bool{}
	last := map[string]outboxEvent{}
	for _, e := range got {
		want, ok := committed[e.id]
		switch {
		case !ok:
			t.Errorf("event %s (%s %s seq %d) was not committed", e.id, e.topic, e.key, e.seq)
		case seen[e.id]:
			t.Errorf("event %s twice", e.id)
		case want.topic != e.topic || want.key != e.key || want.typ != e.typ || want.seq != e.seq:
			t.Errorf("event %s: %+v, want %+v", e.id, e, want)
		}
		seen[e.id] = true
		if prev, ok := last[e.key]; ok {
			if prev.partition != e.partition {
				t.Errorf("aggregate %s in partitions %d and %d", e.key, prev.partition, e.partition)
			}
			if e.seq != prev.seq+1 {
				t.Errorf("aggregate %s: seq %d after %d", e.key, e.seq, prev.seq)
			}
		} else if e.seq != 1 {
			t.Errorf("aggregate %s starts at seq %d", e.key, e.seq)
		}
		last[e.key] = e
	}
	if len(seen) != len(committed) {
		t.Errorf("%d events routed, %d committed", len(seen), len(committed))
	}
}

// outboxApp is an application writing orders and their events, some
// transactions rolled back.
type outboxApp struct {
	rng       *rand.Rand
	seq       map[string]int // per aggregate, committed
	committed map[string]outboxEvent
	order     int
}

func newOutboxApp(seed uint64) *outboxApp {
	return &outboxApp{rng: rand.New(rand.NewPCG(seed, 1)), seq: map[string]int{}, committed: map[string]outboxEvent{}}
}

// txn makes the events of one transaction; commit records them as
// committed when it commits.
func (a *outboxApp) txn() (events []outbox.Event, commit func()) {
	a.order++
	n := 1 + a.rng.IntN(3)
	next := map[string]int{}
	var made []outboxEvent
	for range n {
		kind := []string{"order", "customer", "invoice"}[a.rng.IntN(3)]
		key := fmt.Sprintf("%s-%d", kind, a.rng.IntN(8))
		s := a.seq[key] + next[key] + 1
		next[key]++
		payload := fmt.Sprintf(`{"seq":%d,"order":%d,"note":"ünï ☕ %s"}`, s, a.order, strings.Repeat("x", a.rng.IntN(300)))
		events = append(events, outbox.Event{AggregateType: kind, AggregateID: key, Type: kind + "Changed", Payload: []byte(payload)})
		made = append(made, outboxEvent{topic: "outbox.event." + kind, key: key, typ: kind + "Changed", seq: s})
	}
	return events, func() {
		for i, e := range events {
			made[i].id = e.ID.String()
			a.committed[made[i].id] = made[i]
		}
		for k, d := range next {
			a.seq[k] += d
		}
	}
}

var outboxTopics = []string{"outbox.event.order", "outbox.event.customer", "outbox.event.invoice"}

func waitEvents(t *testing.T, p *pipeline, want int) []outboxEvent {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		got := p.readEvents(t, outboxTopics...)
		if len(got) >= want || time.Now().After(deadline) {
			return got
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// PostgreSQL: an application writes orders and their events, through the
// outbox table (pgx) and as logical-decoding messages (database/sql), a
// fifth of its transactions rolled back, a Debezium-shaped outbox table
// beside Eddy's; rows written before the connector starts come through
// its snapshot. The outbox-clean job runs all along: it must delete only
// captured rows (or their events would be missing), its deletes are no
// events, and the table ends empty.
func TestOutboxPostgres(t *testing.T) {
	ctx := context.Background()
	dsn, conn := testDB(t)
	testdb.Exec(t, conn, "create table orders (id int primary key, note text)")
	table, _ := outbox.New(outbox.Config{Dialect: outbox.Postgres})
	if err := table.Migrate(ctx, conn); err != nil {
		t.Fatal(err)
	}
	msgs, _ := outbox.New(outbox.Config{Dialect: outbox.Postgres, Mode: outbox.ModeMessage})
	app := newOutboxApp(1)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	write := func(i int) {
		events, commit := app.txn()
		rollback := i%5 == 3
		if i%2 == 0 {
			tx, err := conn.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			tx.Exec(ctx, "insert into orders values ($1, 'x')", app.order)
			if err := table.Write(ctx, tx, events...); err != nil {
				t.Fatal(err)
			}
			if rollback {
				tx.Rollback(ctx)
				return
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
		} else {
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			tx.ExecContext(ctx, "insert into orders values ($1, 'y')", app.order)
			if err := msgs.Write(ctx, tx, events...); err != nil {
				t.Fatal(err)
			}
			if rollback {
				tx.Rollback()
				return
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
		}
		commit()
	}
	for i := range 400 { // before the connector: the table's rows come by the snapshot (messages before the slot are not captured)
		if i%2 == 0 {
			write(i)
		}
	}
	p := startPipeline(t, t.TempDir(), fmt.Sprintf(`
topics:
  - {name: outbox.event.order, partitions: 3}
  - {name: outbox.event.customer, partitions: 2}
connectors:
  - name: pg
    plugin: postgres-source
    config: {dsn: %q, tables: [public.orders, public.outbox], topic_prefix: shop, messages: [outbox], snapshot_chunk_rows: 20}
    transforms:
      - type: outbox
jobs:
  - {name: clean, plugin: outbox-clean, schedule: "@every 1h", config: {connector: pg, table: public.outbox, batch_size: 16, wait: 10s}}
`, dsn))
	counter := testdb.Connect(t, dsn)
	finish := p.cleaning(t, "clean", func() int { // from the start: the snapshot's rows are no more captured than the rest
		var n int
		if err := counter.QueryRow(ctx, "select count(*) from outbox").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	})
	waitSlotActive(t, conn)
	for i := 400; i < 700; i++ {
		write(i)
	}
	got := waitEvents(t, p, len(app.committed))
	finish()                           // the cleanup's deletes of captured rows: not events
	time.Sleep(500 * time.Millisecond) // anything more would be a duplicate
	checkEvents(t, p.readEvents(t, outboxTopics...), app.committed)
	if len(got) == 0 {
		t.Fatal("no events")
	}
	if orders := p.readChanges(t, "shop.public.orders"); len(orders) == 0 {
		t.Error("the business table's changes are not in the log")
	}
	if tp, err := p.log.Topic("shop.message"); err == nil && tp.Partitions() > 0 {
		part, _ := tp.Partition(0)
		if n := len(readRecords(t, part)); n > 0 {
			t.Errorf("%d messages left unrouted on shop.message", n)
		}
	}
}

// waitSlotActive waits until the connector streams from its slot, so that
// messages written after it are captured.
func waitSlotActive(t *testing.T, conn *pgx.Conn) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var n int
		conn.QueryRow(context.Background(), "select count(*) from pg_replication_slots where database = current_database() and active").Scan(&n)
		if n > 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("the connector's slot never became active")
}

// MariaDB: the same application through database/sql, table mode, rows
// before the connector by the snapshot.
func TestOutboxMariaDB(t *testing.T) {
	testdb.MariaBinlogShared(t)
	ctx := context.Background()
	name := testdb.MariaDB(t, "eddy_it_outbox")
	db, err := sql.Open("mysql", "root@tcp("+testdb.MariaAddr+")/"+name)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "create table orders (id int primary key, note text)"); err != nil {
		t.Fatal(err)
	}
	w, _ := outbox.New(outbox.Config{Dialect: outbox.MySQL})
	if err := w.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	app := newOutboxApp(2)
	write := func(i int) {
		events, commit := app.txn()
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		tx.ExecContext(ctx, "insert into orders values (?, 'x')", app.order)
		if err := w.Write(ctx, tx, events...); err != nil {
			t.Fatal(err)
		}
		if i%5 == 3 {
			tx.Rollback()
			return
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		commit()
	}
	for i := range 300 {
		write(i)
	}
	p := startPipeline(t, t.TempDir(), fmt.Sprintf(`
topics:
  - {name: outbox.event.order, partitions: 3}
connectors:
  - name: maria
    plugin: mysql-source
    config: {dsn: "mysql://root@%s", server_id: %d, tables: [%s.orders, %s.outbox], topic_prefix: shop, heartbeat_interval: 1s, snapshot_chunk_rows: 20}
    transforms:
      - {type: outbox, table: %s.outbox}
jobs:
  - {name: clean, plugin: outbox-clean, schedule: "@every 1h", config: {connector: maria, table: %s.outbox, batch_size: 16, wait: 10s}}
`, testdb.MariaAddr, 5000+rand.IntN(1e6), name, name, name, name))
	finish := p.cleaning(t, "clean", func() int {
		var n int
		if err := db.QueryRowContext(ctx, "select count(*) from outbox").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	})
	for i := 300; i < 500; i++ {
		write(i)
	}
	waitEvents(t, p, len(app.committed))
	finish()
	time.Sleep(500 * time.Millisecond)
	checkEvents(t, p.readEvents(t, outboxTopics...), app.committed)
}
