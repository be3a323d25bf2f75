package mysql

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/hamba/avro/v2"

	"github.com/eddy-cdc/eddy/connect"
	"github.com/eddy-cdc/eddy/internal/testdb"
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

// DDL mid-stream: each row is decoded with the columns it was written
// with, and a restart from before the DDL decodes the same way, though the
// table now has its final shape.
func TestDDLMidStream(t *testing.T) {
	params := origin(t, []string{"create table ddl_t (id int primary key, a int, b varchar(10))", "insert into ddl_t values (1, 1, 'one')"}, "ddl_*")
	db := originDB(params)
	src := openSource(t, params, nil)
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
	// A restart (after kill -9, say) from the first insert: the binlog's
	// table maps give each row its own columns again.
	src.Close()
	again := openSource(t, params, got[0].Position)
	check("after a restart from before the DDL", pollN(t, again, len(want)-1), want[1:])
}
