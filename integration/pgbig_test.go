package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	elog "github.com/eddy-cdc/eddy/log"
)

// peakRSS reads a process's high-water resident set, in bytes.
func peakRSS(pid int) int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return -1
}

// waitSlot waits until the slot has confirmed the server's current WAL end.
func waitSlot(t testing.TB, conn *pgx.Conn, slot string, d time.Duration, logs ...string) time.Duration {
	t.Helper()
	ctx := context.Background()
	var lsn string
	conn.QueryRow(ctx, "select pg_current_wal_lsn()::text").Scan(&lsn)
	start := time.Now()
	for {
		var caught bool
		conn.QueryRow(ctx, "select coalesce(confirmed_flush_lsn >= $1::pg_lsn, false) from pg_replication_slots where slot_name = $2", lsn, slot).Scan(&caught)
		if caught {
			return time.Since(start)
		}
		if time.Since(start) > d {
			var confirmed string
			conn.QueryRow(ctx, "select coalesce(confirmed_flush_lsn::text, '') from pg_replication_slots where slot_name = $1", slot).Scan(&confirmed)
			var tail string
			for _, l := range logs {
				b, _ := os.ReadFile(l)
				tail += string(b[max(0, len(b)-6000):])
			}
			t.Fatalf("slot %s did not reach %s in %s (it is at %q)\n%s", slot, lsn, d, confirmed, tail)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// One transaction of 1,000,000 rows goes into the log in batches, not
// held in memory: eddy run's peak RSS stays under 256 MiB, every row is in
// the log, and the slot moves only once all of them are durable.
func TestPostgresMillionRowTransaction(t *testing.T) {
	if testing.Short() {
		t.Skip("large transaction")
	}
	dsn, conn := testDB(t)
	ctx := context.Background()
	if _, err := conn.Exec(ctx, `create table big (id int primary key, v bigint not null, note text)`); err != nil {
		t.Fatal(err)
	}
	bin := buildEddy(t)
	dir := t.TempDir()
	cfg := eddyConfig(t, dir, fmt.Sprintf(`connectors:
  - name: pg
    plugin: postgres-source
    config: {dsn: %q, tables: [big], topic_prefix: shop}
`, dsn))
	p := startEddy(t, bin, cfg, filepath.Join(dir, "eddy.log"))
	defer p.kill()
	<-p.up
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	if _, err := conn.Exec(ctx, `insert into big select g, 0, md5(g::text) from generate_series(1, 1000000) g`); err != nil {
		t.Fatal(err)
	}
	took := waitSlot(t, conn, "eddy_pg", 3*time.Minute, filepath.Join(dir, "eddy.log"))
	rss := peakRSS(p.cmd.Process.Pid)
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.cmd.Wait()
	l, err := elog.Open(filepath.Join(dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	tp, err := l.Topic("shop.public.big")
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for i := range tp.Partitions() {
		part, _ := tp.Partition(i)
		n += part.HighWatermark()
	}
	t.Logf("1,000,000-row transaction: %d events in the log, slot confirmed %s after the commit (insert took %s), peak RSS %d MiB",
		n, took.Round(time.Millisecond), time.Since(start).Round(time.Millisecond)-took.Round(time.Millisecond), rss>>20)
	if n != 1_000_000 {
		t.Fatalf("%d events, want 1000000", n)
	}
	if rss <= 0 || rss > 256<<20 {
		t.Fatalf("peak RSS %d MiB, want under 256", rss>>20)
	}
}
