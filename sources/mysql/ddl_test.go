package mysql

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hamba/avro/v2"

	"github.com/eddy-cdc/eddy/connect"
	"github.com/eddy-cdc/eddy/internal/testdb"
	elog "github.com/eddy-cdc/eddy/log"
)

// shape is a change as the DDL test reads it: topic's table, op, the
// after-image's fields in schema order with their Avro types and values.
func shape(r connect.Record) string {
	_, table, _ := strings.Cut(strings.TrimPrefix(r.Topic, "shop."), ".")
	v := r.Value.(map[string]any)
	img, _ := v["after"].(map[string]any)
	env := r.ValueSchema.(*avro.RecordSchema)
	value := env.Fields()[0].Type().(*avro.UnionSchema).Types()[1].(*avro.RecordSchema) // before: the Value record
	var fields []string
	for _, f := range value.Fields() {
		typ := f.Type()
		if u, ok := typ.(*avro.UnionSchema); ok {
			typ = u.Types()[1]
		}
		fields = append(fields, fmt.Sprintf("%s:%s=%v", f.Name(), typ.Type(), img[f.Name()]))
	}
	return table + " " + v["op"].(string) + " " + strings.Join(fields, " ")
}

// historyIn is a schema history in a log of its own in a temporary
// directory, kept across the sources a test opens.
func historyIn(t *testing.T) func() (connect.History, error) {
	l, err := elog.Open(filepath.Join(t.TempDir(), "data"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return func() (connect.History, error) { return connect.OpenHistory(l, "test") }
}

// DDL mid-stream: each row is decoded with the columns it was written
// with, and a restart from before the DDL decodes the same way, though the
// table now has its final shape. Three ways: the binlog's own column
// metadata (binlog_row_metadata=FULL), that with the schema history kept
// beside it (which must agree with every table map), and the schema
// history alone (binlog_row_metadata=MINIMAL), rebuilt on each restart.
func TestDDLMidStream(t *testing.T) {
	t.Run("binlog metadata", func(t *testing.T) { ddlMidStream(t, nil, true) })
	t.Run("binlog metadata and history", func(t *testing.T) { ddlMidStream(t, historyIn(t), true) })
	t.Run("history alone", func(t *testing.T) {
		testdb.MariaBinlogExclusive(t) // a server setting, for this test
		testdb.MariaExec(t, "", "set global binlog_row_metadata = 'MINIMAL'")
		t.Cleanup(func() { testdb.MariaExec(t, "", "set global binlog_row_metadata = 'FULL'") })
		ddlMidStream(t, historyIn(t), false)
	})
}

func ddlMidStream(t *testing.T, history func() (connect.History, error), full bool) {
	params := origin(t, []string{"create table ddl_t (id int primary key, a int, b varchar(10))", "insert into ddl_t values (1, 1, 'one')"}, "ddl_*")
	db := originDB(params)
	open := func(position []byte) *Source {
		t.Helper()
		src := buildWith(t, params, "test", history)
		if err := src.Open(context.Background(), position); err != nil {
			t.Fatalf("open: %v", err)
		}
		if src.fullMeta != full {
			t.Fatalf("the source reads binlog_row_metadata FULL: %v, want %v", src.fullMeta, full)
		}
		return src
	}
	src := open(nil)
	snap := pollN(t, src, 1)
	testdb.MariaExec(t, db,
		"insert into ddl_t values (2, 2, 'two')",
		"alter table ddl_t add column c int not null default 7",
		"insert into ddl_t values (3, 3, 'three', 8)",
		"alter table ddl_t drop column b",
		"insert into ddl_t values (4, 4, 9)",
		"alter table ddl_t change a renamed int",
		"insert into ddl_t values (5, 5, 10)",
		"alter table ddl_t modify c bigint not null",
		"insert into ddl_t values (6, 6, 10000000000)",
		"rename table ddl_t to ddl_u",
		"insert into ddl_u values (7, 7, 11)",
		"update ddl_u set renamed = 70 where id = 7",
		"truncate table ddl_u",
		"insert into ddl_u values (8, 8, 12)",
		// pt-online-schema-change's swap: a copy altered, renamed in.
		"create table _ddl_u_new like ddl_u",
		"alter table _ddl_u_new add column d varchar(5) character set latin1 first",
		"insert into _ddl_u_new select 'é', id, renamed, c from ddl_u",
		"rename table ddl_u to _ddl_u_old, _ddl_u_new to ddl_u",
		"drop table _ddl_u_old",
		"insert into ddl_u values ('ü', 9, 9, 13)",
	)
	want := []string{
		"ddl_t c id:int=2 a:int=2 b:string=two",
		"ddl_t c id:int=3 a:int=3 b:string=three c:int=8",
		"ddl_t c id:int=4 a:int=4 c:int=9",
		"ddl_t c id:int=5 renamed:int=5 c:int=10",
		"ddl_t c id:int=6 renamed:int=6 c:long=10000000000",
		"ddl_u c id:int=7 renamed:int=7 c:long=11",
		"ddl_u u id:int=7 renamed:int=70 c:long=11",
		"ddl_u t id:int=<nil> renamed:int=<nil> c:long=<nil>",
		"ddl_u c id:int=8 renamed:int=8 c:long=12",
		"ddl_u c d:string=ü id:int=9 renamed:int=9 c:long=13",
	}
	got := pollN(t, src, len(want))
	check := func(what string, got []connect.Record, want []string) {
		t.Helper()
		var g []string
		for _, r := range got {
			g = append(g, shape(r))
		}
		if !slices.Equal(g, want) {
			t.Fatalf("%s:\n  got  %s\n  want %s", what, strings.Join(g, "\n       "), strings.Join(want, "\n       "))
		}
	}
	check("mid-stream", got, want)
	if got[0].ValueSchema.String() != snap[0].ValueSchema.String() {
		t.Errorf("before any DDL the stream's schema differs from the snapshot's")
	}
	if src.mismatches != 0 {
		t.Errorf("the schema history disagreed with %d of the binlog's table maps", src.mismatches)
	}
	// A restart (after kill -9, say) from the first insert, and from the
	// middle: each row is decoded with its own columns again, from the
	// binlog's table maps or the history as of the stored position.
	src.Close()
	again := open(got[0].Position)
	check("after a restart from before the DDL", pollN(t, again, len(want)-1), want[1:])
	again.Close()
	if history != nil {
		// Stored past the first DDLs: the entries before them go.
		if err := again.Commit(context.Background(), got[4].Position); err != nil {
			t.Fatal(err)
		}
	}
	mid := open(got[4].Position)
	check("after a restart from the middle", pollN(t, mid, len(want)-5), want[5:])
}
