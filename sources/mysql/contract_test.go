package mysql

import (
	"math/rand/v2"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/eddy-cdc/eddy/connect/connecttest"
	"github.com/eddy-cdc/eddy/internal/testdb"
)

// replicaGrants are the rights the docs ask of mysql-source's user.
func replicaGrants(db string) []string {
	return []string{"grant replication slave, binlog monitor on *.* to %u", "grant select on `" + db + "`.* to %u"}
}

// origin makes a database and a user with the documented rights, runs
// setup in it, and returns the source's params.
func origin(t *testing.T, setup []string, tables ...string) map[string]any {
	testdb.MariaBinlogShared(t)
	db := testdb.MariaDB(t, "eddy_mysrc")
	user := testdb.MariaUser(t, replicaGrants(db)...)
	testdb.MariaExec(t, db, setup...)
	list := make([]any, len(tables))
	for i, n := range tables {
		list[i] = db + "." + n
	}
	return map[string]any{"dsn": "mysql://" + user + ":pw@" + testdb.MariaAddr, "tables": list, "topic_prefix": "shop",
		"server_id": 1000 + rand.IntN(1<<30), "batch_size": 100}
}

// originDB and originUser are the database and user of origin's params.
func originDB(params map[string]any) string {
	db, _, _ := strings.Cut(params["tables"].([]any)[0].(string), ".")
	return db
}

func originUser(params map[string]any) string {
	u, _ := url.Parse(params["dsn"].(string))
	return u.User.Username()
}

// mysql-source under the source contract, against the local MariaDB
// (binlog_row_metadata=FULL, as scripts/test-services.sh sets it up).
func TestMySQLSourceContract(t *testing.T) {
	testdb.MariaBinlogExclusive(t) // Forget purges the server's binlogs
	connecttest.SourceSuite(t, connecttest.SourceTarget{
		Plugin: "mysql-source",
		New:    New,
		Origin: func(t *testing.T, setup []string) map[string]any {
			return origin(t, setup, "parts", "order_lines", "empty_things")
		},
		Exec: func(t *testing.T, params map[string]any, stmts ...string) {
			testdb.MariaExec(t, originDB(params), stmts...)
		},
		Disconnect: func(t *testing.T, params map[string]any) { testdb.MariaKill(t, originUser(params)) },
		Forget:     func(t *testing.T, params map[string]any) { purgeBinlogs(t, originUser(params)) },
		BadConfigs: []connecttest.BadConfig{
			{Params: map[string]any{"tables": []any{"shop.x"}}, Key: "dsn"},
			{Params: map[string]any{"dsn": "mysql://u@h:3306"}, Key: "tables"},
			{Params: map[string]any{"dsn": "postgres://u@h/db", "tables": []any{"shop.x"}}, Key: "dsn"},
			{Params: map[string]any{"dsn": "mysql://u@h:3306", "tables": []any{"orders"}}, Key: "tables"},
			{Params: map[string]any{"dsn": "mysql://u@h:3306", "tables": []any{"shop.x"}, "snapshot": "sometimes"}, Key: "snapshot"},
			{Params: map[string]any{"dsn": "mysql://u@h:3306", "tables": []any{"shop.x"}, "server_id": -1}, Key: "server_id"},
			{Params: map[string]any{"dsn": "mysql://u@h:3306", "tables": []any{"shop.x"}, "flavor": "oracle"}, Key: "flavor"},
		},
	})
}

// purgeBinlogs makes the server drop every binlog but a new one, as
// binlog expiry does: server-wide, so its caller holds
// testdb.MariaBinlogExclusive. A binlog a replica still reads is kept,
// so user's sessions (the closed source's dump thread lingers a moment)
// end first.
func purgeBinlogs(t *testing.T, user string) {
	t.Helper()
	root := testdb.MariaRoot(t)
	testdb.MariaKill(t, user)
	if _, err := root.Execute("flush binary logs"); err != nil {
		t.Fatal(err)
	}
	r, err := root.Execute("show master status")
	if err != nil {
		t.Fatal(err)
	}
	file, _ := r.GetString(0, 0)
	for try := 0; ; try++ {
		if _, err := root.Execute("purge binary logs to '" + file + "'"); err != nil {
			t.Fatal(err)
		}
		logs, err := root.Execute("show binary logs")
		if err != nil {
			t.Fatal(err)
		}
		if logs.RowNumber() == 1 {
			return
		}
		if try == 50 {
			t.Fatalf("%d binlogs left after purging to %s", logs.RowNumber(), file)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
