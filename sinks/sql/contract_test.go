package sql

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/jackc/pgx/v5"

	"github.com/eddy-cdc/eddy/connect/connecttest"
	"github.com/eddy-cdc/eddy/internal/testdb"
)

// postgres-sink under the sink contract, against the local PostgreSQL.
func TestPostgresSinkContract(t *testing.T) {
	ctx := context.Background()
	connectTo := func(t *testing.T, params map[string]any) *pgx.Conn { return testdb.Connect(t, params["dsn"].(string)) }
	exec := func(t *testing.T, c *pgx.Conn, q string) { t.Helper(); testdb.Exec(t, c, q) }
	terminate := func(t *testing.T, c *pgx.Conn) {
		exec(t, c, "select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()")
	}
	connecttest.SinkSuite(t, connecttest.SinkTarget{
		Plugin:      "postgres-sink",
		New:         NewPostgres,
		Semantics:   connecttest.Upsert,
		Destination: func(t *testing.T) map[string]any { return map[string]any{"dsn": testDatabase(t)} },
		Read: func(t *testing.T, params map[string]any) []connecttest.Row {
			c := connectTo(t, params)
			var out []connecttest.Row
			read := func(q string, row func(pgx.Rows) connecttest.Row) {
				rows, err := c.Query(ctx, q)
				if err == nil {
					for rows.Next() {
						out = append(out, row(rows))
					}
					err = rows.Err()
				}
				if err != nil {
					if strings.Contains(err.Error(), "42P01") {
						return // not made yet
					}
					t.Fatal(err)
				}
			}
			read("select id::text, coalesce(v, '') from public_parts", func(rows pgx.Rows) connecttest.Row {
				r := connecttest.Row{Table: "parts"}
				if err := rows.Scan(&r.Key, &r.Value); err != nil {
					t.Fatal(err)
				}
				return r
			})
			read("select order_id, line, sku, qty, price, note, weight from public_lines", func(rows pgx.Rows) connecttest.Row {
				var order, line, qty, weight int64
				var sku string
				var price float64
				var note *string
				if err := rows.Scan(&order, &line, &sku, &qty, &price, &note, &weight); err != nil {
					t.Fatal(err)
				}
				return connecttest.Row{Table: "lines", Key: connecttest.LinesKey(order, line), Value: connecttest.LinesValue(sku, qty, price, note, weight)}
			})
			return out
		},
		Refuse: func(t *testing.T, params map[string]any) {
			exec(t, connectTo(t, params), "alter table public_parts add constraint no_poison check (v is distinct from 'poison')")
		},
		Breaks: map[string]func(*testing.T, map[string]any) func(){
			"read-only": func(t *testing.T, params map[string]any) func() {
				c := connectTo(t, params)
				exec(t, c, "do $$ begin execute format('alter database %I set default_transaction_read_only = on', current_database()); end $$")
				terminate(t, c)
				return func() {
					exec(t, c, "do $$ begin execute format('alter database %I set default_transaction_read_only = off', current_database()); end $$")
				}
			},
		},
		Disconnect: func(t *testing.T, params map[string]any) { terminate(t, connectTo(t, params)) },
		BadConfigs: []connecttest.BadConfig{
			{Params: map[string]any{}, Key: "dsn"},
			{Params: map[string]any{"dsn": "host=x port=notaport"}, Key: "dsn"},
			{Params: map[string]any{"dsn": "postgres://x/y", "mode": "sideways"}, Key: "mode"},
			{Params: map[string]any{"dsn": "postgres://x/y", "primary_key": "fields"}, Key: "primary_key"},
			{Params: map[string]any{"dsn": "postgres://x/y", "flush_interval": "1h"}, Key: "flush_interval"},
			{Params: map[string]any{"dsn": "postgres://x/y", "batch_size": -1}, Key: "batch_size"},
		},
	})
}

// mariaDatabase makes a database on the local MariaDB with a user of its
// own (all rights on it and no other) and returns the sink's DSN and the
// names.
func mariaDatabase(t *testing.T) (dsn, db, user string) {
	t.Helper()
	db = testdb.MariaDB(t, "eddy_sqlsink")
	// Another package's test sets the server read_only for a while
	// (integration, TestReadOnlyMariaDBDeadLettersNothing), and packages
	// test in parallel: this user writes through it, as root does.
	user = testdb.MariaUser(t, "grant all on `"+db+"`.* to %u", "grant read_only admin on *.* to %u")
	return "mysql://" + user + ":pw@" + testdb.MariaAddr + "/" + db, db, user
}

// mysql-sink under the sink contract, against the local MariaDB.
func TestMySQLSinkContract(t *testing.T) {
	users := map[string][2]string{} // dsn -> db, user
	connecttest.SinkSuite(t, connecttest.SinkTarget{
		Plugin:    "mysql-sink",
		New:       NewMySQL,
		Semantics: connecttest.Upsert,
		Destination: func(t *testing.T) map[string]any {
			dsn, db, user := mariaDatabase(t)
			users[dsn] = [2]string{db, user}
			return map[string]any{"dsn": dsn}
		},
		Read: func(t *testing.T, params map[string]any) []connecttest.Row {
			root := testdb.MariaRoot(t)
			db := users[params["dsn"].(string)][0]
			var out []connecttest.Row
			read := func(q string, row func(*mysql.Result, int) connecttest.Row) {
				res, err := root.Execute(q)
				if err != nil {
					if strings.Contains(err.Error(), "1146") {
						return // not made yet
					}
					t.Fatal(err)
				}
				for i := range res.RowNumber() {
					out = append(out, row(res, i))
				}
			}
			read("select id, coalesce(v, '') from `"+db+"`.public_parts", func(res *mysql.Result, i int) connecttest.Row {
				id, _ := res.GetInt(i, 0)
				v, _ := res.GetString(i, 1)
				return connecttest.Row{Table: "parts", Key: fmt.Sprint(id), Value: v}
			})
			read("select order_id, line, sku, qty, price, note, weight from `"+db+"`.public_lines", func(res *mysql.Result, i int) connecttest.Row {
				order, _ := res.GetInt(i, 0)
				line, _ := res.GetInt(i, 1)
				sku, _ := res.GetString(i, 2)
				qty, _ := res.GetInt(i, 3)
				price, _ := res.GetFloat(i, 4)
				var note *string
				if null, _ := res.IsNull(i, 5); !null {
					n, _ := res.GetString(i, 5)
					note = &n
				}
				weight, _ := res.GetInt(i, 6)
				return connecttest.Row{Table: "lines", Key: connecttest.LinesKey(order, line), Value: connecttest.LinesValue(sku, qty, price, note, weight)}
			})
			return out
		},
		Refuse: func(t *testing.T, params map[string]any) {
			q := "alter table `" + users[params["dsn"].(string)][0] + "`.public_parts add constraint no_poison check (v is null or v <> 'poison')"
			if _, err := testdb.MariaRoot(t).Execute(q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		},
		Breaks: map[string]func(*testing.T, map[string]any) func(){
			"rights revoked": func(t *testing.T, params map[string]any) func() {
				du := users[params["dsn"].(string)]
				if _, err := testdb.MariaRoot(t).Execute("revoke insert, update, delete on `" + du[0] + "`.* from '" + du[1] + "'@'127.0.0.1'"); err != nil {
					t.Fatal(err)
				}
				testdb.MariaKill(t, du[1])
				return func() {
					if _, err := testdb.MariaRoot(t).Execute("grant all on `" + du[0] + "`.* to '" + du[1] + "'@'127.0.0.1'"); err != nil {
						t.Fatal(err)
					}
				}
			},
		},
		Disconnect: func(t *testing.T, params map[string]any) { testdb.MariaKill(t, users[params["dsn"].(string)][1]) },
		BadConfigs: []connecttest.BadConfig{
			{Params: map[string]any{}, Key: "dsn"},
			{Params: map[string]any{"dsn": "postgres://x/y"}, Key: "dsn"},
			{Params: map[string]any{"dsn": "mysql://u@h:3306/db", "mode": "sideways"}, Key: "mode"},
			{Params: map[string]any{"dsn": "mysql://u@h:3306/db", "primary_key": "fields"}, Key: "primary_key"},
		},
	})
}
