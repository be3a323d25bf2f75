package integration

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// buildEddy builds the eddy binary for tests that run it as a process.
func buildEddy(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "eddy")
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/eddy").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// eddyConfig writes dir/eddy.yaml for an `eddy run` child: its log in
// dir/data, both APIs on free ports, then body.
func eddyConfig(t testing.TB, dir, body string) string {
	t.Helper()
	path := filepath.Join(dir, "eddy.yaml")
	text := fmt.Sprintf("data_dir: %s\napi: {listen: \"127.0.0.1:0\"}\nregistry: {listen: \"127.0.0.1:0\"}\n%s", filepath.Join(dir, "data"), body)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// eddyProcess is `eddy run` as a child process.
type eddyProcess struct {
	cmd  *exec.Cmd
	logf *os.File
	up   chan struct{}
}

func startEddy(t testing.TB, bin, cfg, logPath string) *eddyProcess {
	t.Helper()
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "-c", cfg)
	stderr, _ := cmd.StderrPipe()
	cmd.Stdout = logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &eddyProcess{cmd: cmd, logf: logf, up: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			fmt.Fprintln(logf, sc.Text())
			if strings.Contains(sc.Text(), "eddy running") {
				once.Do(func() { close(p.up) })
			}
		}
	}()
	return p
}

func (p *eddyProcess) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()
	p.logf.Close()
}

// killRuns starts `eddy run` rounds times and kills it -9 each time once
// it is up, after pause(round, rng) (nil: 100 to 800 ms at random);
// before, when set, runs ahead of each round.
func killRuns(t *testing.T, bin, cfg, logPath string, rounds int, seed uint64, pause func(int, *rand.Rand) time.Duration, before func(int)) {
	t.Helper()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), seed))
	for round := range rounds {
		if before != nil {
			before(round)
		}
		p := startRound(t, bin, cfg, logPath, round)
		d := time.Duration(100+rng.IntN(700)) * time.Millisecond
		if pause != nil {
			d = pause(round, rng)
		}
		time.Sleep(d)
		p.kill()
	}
}

// startRound starts `eddy run` for a round of a crash test and waits
// until it is up, failing with its log if it is not in 30 s.
func startRound(t *testing.T, bin, cfg, logPath string, round int) *eddyProcess {
	t.Helper()
	p := startEddy(t, bin, cfg, logPath)
	select {
	case <-p.up:
	case <-time.After(30 * time.Second):
		p.kill()
		b, _ := os.ReadFile(logPath)
		t.Fatalf("round %d: eddy did not start:\n%.4000s", round, b)
	}
	return p
}

// shopShapes makes the tables of different shapes the crash tests load:
// orders (narrow), customers (wide, of many types, unicode and NULLs in
// defaults), items (a composite key), each with rows rows, and empty_t,
// which stays empty.
func shopShapes(t testing.TB, conn *pgx.Conn, rows int) {
	t.Helper()
	ctx := context.Background()
	if _, err := conn.Exec(ctx, `create table orders (id int primary key, v bigint not null, note text);
		create table customers (id int primary key, v bigint not null, note text, name varchar(40) default 'ünï ✓', born date default '1990-02-03',
			score numeric(8,3) default 1.5, tags text[] default '{a,"b c",NULL}', doc jsonb default '{"k": [1, 2]}', seen timestamptz default now(),
			blob bytea default '\x0001', ok boolean default true);
		create table items (id int not null unique, grp int not null default 7, v bigint not null, note text, primary key (id, grp));
		create table empty_t (id int primary key, v bigint not null, note text)`); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"insert into orders select g, 0, 'initial' from generate_series(1, $1) g",
		"insert into customers (id, v, note) select g, 0, 'initial' from generate_series(1, $1) g",
		"insert into items (id, v, note) select g, 0, 'initial' from generate_series(1, $1) g"} {
		if _, err := conn.Exec(ctx, q, rows); err != nil {
			t.Fatal(err)
		}
	}
}

// mixedLoad runs transactions over several tables from conns connections
// until stop is closed: inserts, updates (v = v + 1) and deletes, some
// transactions touching several tables. Failed transactions (deadlocks
// between the writers) are rolled back and skipped.
func mixedLoad(dsn string, tables []string, keys int, seed uint64, stop <-chan struct{}) int {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0
	}
	defer conn.Close(ctx)
	rng := rand.New(rand.NewPCG(seed, 3))
	n := 0
	for {
		select {
		case <-stop:
			return n
		default:
		}
		tx, err := conn.Begin(ctx)
		if err != nil {
			return n
		}
		ok := true
		for range 1 + rng.IntN(4) {
			table, id := tables[rng.IntN(len(tables))], 1+rng.IntN(keys)
			var q string
			switch rng.IntN(10) {
			case 0:
				q = "delete from " + table + " where id = $1"
			case 1, 2:
				q = "insert into " + table + " (id, v, note) values ($1, 0, 'new') on conflict (id) do update set v = " + table + ".v + 1"
			default:
				q = "update " + table + " set v = v + 1, note = md5(random()::text) where id = $1"
			}
			if _, err := tx.Exec(ctx, q, id); err != nil {
				ok = false
				break
			}
		}
		if !ok {
			tx.Rollback(ctx)
			continue
		}
		if tx.Commit(ctx) == nil {
			n++
		}
	}
}

// Kill -9 `eddy run` at 20 random points while several writers change
// several tables: afterwards the log holds every committed change exactly
// once, in commit order per key (each key's version goes up by one from
// event to event), and its image of every table equals the table. A slot
// confirmed past what the log held would show as a gap.
func TestPostgresKillRunDuringWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test")
	}
	dsn, conn := testDB(t)
	ctx := context.Background()
	// Tables of different shapes in one connector: narrow, wide with many
	// types, a composite key, and one that stays empty.
	tables := []string{"orders", "customers", "items"}
	shopShapes(t, conn, 1500)
	bin := buildEddy(t)
	dir := t.TempDir()
	cfg := eddyConfig(t, dir, fmt.Sprintf(`topics:
  - {name: shop.public.orders, partitions: 3}
  - {name: shop.public.customers, partitions: 2}
connectors:
  - name: pg
    plugin: postgres-source
    config:
      dsn: %q
      tables: [orders, customers, items, empty_t]
      topic_prefix: shop
      batch_size: 300
`, dsn))
	logPath := filepath.Join(dir, "eddy.log")

	stop := make(chan struct{})
	var wg sync.WaitGroup
	txns := make([]int, 3)
	for i := range txns {
		wg.Add(1)
		go func() { defer wg.Done(); txns[i] = mixedLoad(dsn, tables, 2000, uint64(i+1), stop) }()
	}
	killRuns(t, bin, cfg, logPath, 20, 9, nil, nil)
	close(stop)
	wg.Wait()

	p := startEddy(t, bin, cfg, logPath)
	defer p.kill()
	<-p.up
	// Read the log through a pipeline of our own once eddy has caught up:
	// wait until the slot has confirmed the current end of WAL.
	var lsn string
	conn.QueryRow(ctx, "select pg_current_wal_lsn()::text").Scan(&lsn)
	deadline := time.Now().Add(90 * time.Second)
	for {
		var caught bool
		conn.QueryRow(ctx, "select coalesce(confirmed_flush_lsn >= $1::pg_lsn, false) from pg_replication_slots where slot_name = 'eddy_pg'", lsn).Scan(&caught)
		if caught {
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logPath)
			t.Fatalf("the slot never caught up with %s:\n%.5000s", lsn, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("eddy run on SIGTERM: %v", err)
	}
	reader := startPipeline(t, dir, "")
	events := 0
	for _, tb := range tables {
		changes := reader.readChanges(t, "shop.public."+tb)
		events += len(changes)
		got, want := replay(t, changes), tableImage(t, conn, tb)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s: the log's image (%d rows) differs from the table (%d rows)", tb, len(got), len(want))
		}
	}
	b, _ := os.ReadFile(logPath)
	t.Logf("%d transactions, %d events, 20 kills; %d restarts skipped records the log held, %d snapshots started",
		txns[0]+txns[1]+txns[2], events, strings.Count(string(b), "in the log already"), strings.Count(string(b), "snapshot started"))
}

// A snapshot that kill -9 interrupts is taken again, on a new slot, and
// the stream that follows it misses nothing: the log's image of the table
// ends equal to the table, with every change after the last snapshot
// exactly once.
func TestPostgresKillDuringSnapshot(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test")
	}
	dsn, conn := testDB(t)
	ctx := context.Background()
	if _, err := conn.Exec(ctx, `create table orders (id int primary key, v bigint not null, note text);
		insert into orders select g, 0, repeat('x', 200) from generate_series(1, 300000) g`); err != nil {
		t.Fatal(err)
	}
	bin := buildEddy(t)
	dir := t.TempDir()
	cfg := eddyConfig(t, dir, fmt.Sprintf(`topics:
  - {name: shop.public.orders, partitions: 3}
connectors:
  - name: pg
    plugin: postgres-source
    config: {dsn: %q, tables: [orders], topic_prefix: shop, snapshot_chunk_rows: 5000}
`, dsn))
	logPath := filepath.Join(dir, "eddy.log")
	stop := make(chan struct{})
	done := make(chan int)
	go func() { done <- mixedLoad(dsn, []string{"orders"}, 300000, 5, stop) }()
	p := startEddy(t, bin, cfg, logPath)
	<-p.up
	// Inside the snapshot: a fixed sleep after start could outlast a
	// snapshot on a quiet machine.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		if b, _ := os.ReadFile(logPath); strings.Contains(string(b), "snapshot started") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the snapshot did not start; see %s", logPath)
		}
	}
	time.Sleep(100 * time.Millisecond)
	p.kill()
	p = startEddy(t, bin, cfg, logPath)
	<-p.up
	time.Sleep(time.Second)
	close(stop)
	txns := <-done
	waitSlot(t, conn, "eddy_pg", 2*time.Minute, logPath)
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.cmd.Wait()
	b, _ := os.ReadFile(logPath)
	if n := strings.Count(string(b), "snapshot started"); n != 2 {
		t.Fatalf("%d snapshots started, want 2 (the kill came after the snapshot)", n)
	}
	reader := startPipeline(t, dir, "")
	changes := reader.readChanges(t, "shop.public.orders")
	got, want := replay(t, changes), tableImage(t, conn, "orders")
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("the log's image (%d rows) differs from the table (%d rows): %s", len(got), len(want), imageDiff(got, want, changes))
	}
	t.Logf("%d transactions during an interrupted snapshot and its retake", txns)
}

// imageDiff names a few keys whose image differs, each with what the log
// holds of it, for the failure message.
func imageDiff(got, want map[int64]int64, changes []change) string {
	var keys []int64
	for k, v := range got {
		if w, ok := want[k]; !ok || w != v {
			keys = append(keys, k)
		}
	}
	for k := range want {
		if _, ok := got[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var out []string
	for _, k := range keys[:min(len(keys), 3)] {
		g, inGot := got[k]
		w, inWant := want[k]
		var hist []string
		for _, c := range changes {
			if c.key == k || c.op == "t" {
				hist = append(hist, fmt.Sprintf("p%d %s%s", c.partition, c.op, map[bool]string{true: "(snapshot)", false: ""}[c.snap == "true"]))
			}
		}
		out = append(out, fmt.Sprintf("key %d: log %d (%v), table %d (%v), the log's changes of it: %s", k, g, inGot, w, inWant, strings.Join(hist, " ")))
	}
	return strings.Join(out, "; ")
}
