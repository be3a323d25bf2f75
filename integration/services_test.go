package integration

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

const (
	postgresDSN = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	mariaAddr   = "127.0.0.1:3306"
)

// requireService skips when nothing listens at addr: the only reason a test
// here may skip. CI runs scripts/test-services.sh first, so it never does.
func requireService(t testing.TB, name, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Skipf("%s is not running at %s (run scripts/test-services.sh): %v", name, addr, err)
	}
	c.Close()
}

// The later change-capture tests need logical replication: check what
// scripts/test-services.sh promises, over a real connection.
func TestPostgresReadyForLogicalReplication(t *testing.T) {
	requireService(t, "PostgreSQL", "127.0.0.1:5432")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, postgresDSN)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	var wal string
	var slots, senders int
	if err := conn.QueryRow(ctx, "select current_setting('wal_level'), current_setting('max_replication_slots')::int, current_setting('max_wal_senders')::int").Scan(&wal, &slots, &senders); err != nil {
		t.Fatal(err)
	}
	if wal != "logical" || slots < 20 || senders < 20 {
		t.Fatalf("wal_level=%s max_replication_slots=%d max_wal_senders=%d; want logical, >=20, >=20", wal, slots, senders)
	}
	// A replication connection from 127.0.0.1 is allowed.
	rc, err := pgconn.Connect(ctx, postgresDSN+"&replication=database")
	if err != nil {
		t.Fatalf("replication connection: %v", err)
	}
	defer rc.Close(ctx)
	res := rc.Exec(ctx, "IDENTIFY_SYSTEM")
	if _, err := res.ReadAll(); err != nil {
		t.Fatalf("IDENTIFY_SYSTEM: %v", err)
	}
}

func TestMariaDBReadyForRowBinlogs(t *testing.T) {
	requireService(t, "MariaDB", mariaAddr)
	conn, err := client.Connect(mariaAddr, "root", "", "")
	if err != nil {
		t.Fatalf("connect as root with an empty password: %v", err)
	}
	defer conn.Close()
	res, err := conn.Execute("select @@log_bin, @@binlog_format, @@binlog_row_image, @@server_id, @@gtid_strict_mode, @@gtid_current_pos")
	if err != nil {
		t.Fatal(err)
	}
	logBin, _ := res.GetInt(0, 0)
	format, _ := res.GetString(0, 1)
	image, _ := res.GetString(0, 2)
	serverID, _ := res.GetInt(0, 3)
	strict, _ := res.GetInt(0, 4)
	if logBin != 1 || format != "ROW" || image != "FULL" || serverID == 0 || strict != 1 {
		t.Fatalf("log_bin=%d binlog_format=%s binlog_row_image=%s server_id=%d gtid_strict_mode=%d", logBin, format, image, serverID, strict)
	}
}
