package mysql

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/eddy-cdc/eddy/connect"
	"github.com/eddy-cdc/eddy/internal/testdb"
)

// openErr builds mysql-source on params as connector name and returns
// what Open says, which must be a permanent error.
func openErr(t *testing.T, params map[string]any, name string) error {
	t.Helper()
	src := build(t, params, name)
	defer src.Close()
	err := src.Open(context.Background(), nil)
	if err == nil {
		return nil
	}
	if !connect.IsPermanent(err) {
		t.Errorf("%v is not permanent: the runtime would retry it forever", err)
	}
	return err
}

func expectErr(t *testing.T, err error, says ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("opened without an error, want one saying %q", says)
	}
	if !errors.Is(err, ErrPreflight) {
		t.Errorf("%v is not a preflight error", err)
	}
	for _, s := range says {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
}

// Each thing capture needs, missing, is a permanent error that says what
// to change.
func TestPreflight(t *testing.T) {
	setup := []string{"create table t (id int primary key, v text)", "create table nokey (v text)"}
	t.Run("rights", func(t *testing.T) {
		params := origin(t, setup, "t")
		user := testdb.MariaUser(t, "grant select on `"+originDB(params)+"`.* to %u")
		params["dsn"] = "mysql://" + user + ":pw@" + testdb.MariaAddr
		expectErr(t, openErr(t, params, "rights"), "lacks REPLICATION SLAVE and REPLICATION CLIENT", "GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO "+user)
	})
	t.Run("no select", func(t *testing.T) {
		params := origin(t, setup, "t")
		user := testdb.MariaUser(t, "grant replication slave, binlog monitor on *.* to %u")
		params["dsn"] = "mysql://" + user + ":pw@" + testdb.MariaAddr
		expectErr(t, openErr(t, params, "select"), "does not exist, or user "+user+" may not see it", "GRANT SELECT ON "+originDB(params)+".t")
	})
	t.Run("missing table", func(t *testing.T) {
		params := origin(t, setup, "t", "nope")
		expectErr(t, openErr(t, params, "missing"), "table "+originDB(params)+".nope does not exist")
	})
	t.Run("no primary key", func(t *testing.T) {
		params := origin(t, setup, "nokey")
		expectErr(t, openErr(t, params, "nokey"), "has no primary key", "no_primary_key: all_columns")
		params["no_primary_key"] = "all_columns"
		src := openSource(t, params, nil)
		testdb.MariaExec(t, originDB(params), "insert into nokey values ('a')")
		r := pollN(t, src, 1)[0]
		if k, _ := r.Key.(map[string]any); k["v"] != "a" {
			t.Errorf("a keyless table's event keyed %v, want all its columns", r.Key)
		}
	})
	t.Run("binlog settings", func(t *testing.T) {
		testdb.MariaBinlogExclusive(t) // the server's settings, for a moment
		params := origin(t, setup, "t")
		for _, c := range []struct{ set, restore, says string }{
			{"set global binlog_format = 'STATEMENT'", "set global binlog_format = 'ROW'", "set binlog_format = ROW"},
			{"set global binlog_row_image = 'MINIMAL'", "set global binlog_row_image = 'FULL'", "set binlog_row_image = FULL"},
			{"set global binlog_row_metadata = 'MINIMAL'", "set global binlog_row_metadata = 'FULL'", "set binlog_row_metadata = FULL"},
		} {
			testdb.MariaExec(t, "", c.set)
			err := openErr(t, params, "settings")
			testdb.MariaExec(t, "", c.restore)
			expectErr(t, err, c.says)
		}
	})
	t.Run("server_id in use", func(t *testing.T) {
		params := origin(t, setup, "t")
		// Listing the server's replicas takes REPLICATION MASTER ADMIN
		// on MariaDB (REPLICATION SLAVE on MySQL).
		user := testdb.MariaUser(t, append(replicaGrants(originDB(params)), "grant replication master admin on *.* to %u")...)
		params["dsn"] = "mysql://" + user + ":pw@" + testdb.MariaAddr
		first := openSource(t, params, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		first.Poll(ctx) // the empty snapshot, then the stream registers as a replica
		cancel()
		expectErr(t, openErr(t, params, "another-connector"), "is in use by another replica")
	})
}

// The stream reports how much binlog is left to read.
func TestLagBytes(t *testing.T) {
	params := origin(t, []string{"create table t (id int primary key, v text)"}, "t")
	src := openSource(t, params, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	src.Poll(ctx) // the empty snapshot; streaming from here
	cancel()
	testdb.MariaExec(t, originDB(params), "insert into t select seq, repeat('x', 1000) from seq_1_to_200")
	n, ok := src.LagBytes()
	if !ok || n < 200*1000 {
		t.Fatalf("lag %d bytes (known %v) with 200 kB written and not read", n, ok)
	}
}
