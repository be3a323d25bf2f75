// Package testdb gives tests a database of their own on the local servers
// that scripts/test-services.sh starts: PostgreSQL on 127.0.0.1:5432.
package testdb

import (
	"context"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresAdmin is the superuser DSN of the local PostgreSQL.
const PostgresAdmin = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

var seq atomic.Int64

// postgresLock keeps a test that restarts the local PostgreSQL
// (PostgresRestart) apart from every test with a database on it
// (Postgres), in every package.
var postgresLock = &Lock{Path: "/tmp/eddy-test-postgresql.lock"}

// PostgresRestart holds the local PostgreSQL alone until the test ends,
// so that it may restart it under no other test; call it first in the
// test.
func PostgresRestart(t testing.TB) { postgresLock.Alone(t) }

// PostgresInUse holds the local PostgreSQL shared until the test ends,
// for a test that uses it without a database of its own from Postgres.
func PostgresInUse(t testing.TB) { postgresLock.Share(t) }

// Postgres makes a database on the local PostgreSQL, dropped (with the
// replication slots on it) when the test ends, and returns its DSN. It
// skips the test when the server is not running, and no test restarts
// the server before it ends. prefix names the
// package's databases, so a killed run's leftovers can be dropped.
func Postgres(t testing.TB, prefix string) string {
	t.Helper()
	if c, err := net.DialTimeout("tcp", "127.0.0.1:5432", 2*time.Second); err != nil {
		t.Skipf("PostgreSQL is not running (run scripts/test-services.sh): %v", err)
	} else {
		c.Close()
	}
	postgresLock.Share(t)
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, PostgresAdmin)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	mine := fmt.Sprintf("%s_%d_", prefix, os.Getpid())
	admin.Exec(ctx, "select pg_drop_replication_slot(slot_name) from pg_replication_slots where database like $1 and database not like $2 and not active", prefix+"_%", mine+"%")
	if rows, err := admin.Query(ctx, "select datname from pg_database where datname like $1 and datname not like $2", prefix+"_%", mine+"%"); err == nil {
		stale, _ := pgx.CollectRows(rows, pgx.RowTo[string]) // left by a killed run
		for _, db := range stale {
			admin.Exec(ctx, "drop database "+db+" with (force)")
		}
	}
	name := fmt.Sprintf("%s%d_%d", mine, time.Now().UnixNano()%1e9, seq.Add(1))
	if _, err := admin.Exec(ctx, "create database "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		admin, err := pgx.Connect(ctx, PostgresAdmin) // a fresh one: the server may have restarted
		if err != nil {
			t.Errorf("drop test database %s: %v", name, err)
			return
		}
		defer admin.Close(ctx)
		// A killed eddy's walsender may hold its slot a moment longer.
		for range 50 {
			admin.Exec(ctx, "select pg_terminate_backend(active_pid) from pg_replication_slots where database = $1 and active_pid is not null", name)
			admin.Exec(ctx, "select pg_drop_replication_slot(slot_name) from pg_replication_slots where database = $1 and not active", name)
			var left int
			admin.QueryRow(ctx, "select count(*) from pg_replication_slots where database = $1", name).Scan(&left)
			if left == 0 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if _, err := admin.Exec(ctx, "drop database "+name+" with (force)"); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})
	return "postgres://postgres@127.0.0.1:5432/" + name + "?sslmode=disable"
}

// Connect opens a connection to dsn, closed when the test ends.
func Connect(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(ctx) })
	return c
}

// Exec runs q on c, failing the test with the statement on an error.
func Exec(t testing.TB, c *pgx.Conn, q string, args ...any) {
	t.Helper()
	if _, err := c.Exec(context.Background(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}
