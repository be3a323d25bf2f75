package mysql

import (
	"encoding/json"
	"fmt"
	"reflect"

	"github.com/hamba/avro/v2"

	"github.com/eddy-cdc/eddy/internal/avrobin"
	"github.com/eddy-cdc/eddy/internal/capture"
)

// table is a captured table with the columns its rows are decoded with:
// from information_schema for the snapshot, from the binlog's table map
// for each row event after it (binlog_row_metadata=FULL), so a row is
// decoded with the schema it was written with.
type table struct {
	db, name string
	cols     []column
	keyCols  []int     // into cols, in table order
	keyOrder []int     // into cols, in the primary key's order (snapshot chunks)
	decs     []decoder // per column: the binlog's text to UTF-8
	fields   []string  // per column: its Avro field name
	keyNames []string  // the key columns' field names, in keyCols' order
	index    int       // in the connector's table list, for snapshot positions
	allKey   bool      // no primary key: keyed on all columns (no_primary_key: all_columns)

	topic       string
	keySchema   avro.Schema
	valueSchema avro.Schema
}

func (t *table) full() string { return t.db + "." + t.name }

// sourceSchema is the "source" block of every event: Debezium's MySQL
// connector's fields.
const sourceSchema = `{"type":"record","name":"Source","namespace":"io.eddy.mysql","fields":[
	{"name":"version","type":"string"},
	{"name":"connector","type":"string"},
	{"name":"name","type":"string"},
	{"name":"ts_ms","type":"long"},
	{"name":"snapshot","type":["null","string"],"default":null},
	{"name":"db","type":"string"},
	{"name":"table","type":["null","string"],"default":null},
	{"name":"server_id","type":"long"},
	{"name":"gtid","type":["null","string"],"default":null},
	{"name":"file","type":"string"},
	{"name":"pos","type":"long"},
	{"name":"row","type":"int"},
	{"name":"thread","type":["null","long"],"default":null}]}`

// sourceNames are the source block's fields in schema order, for the
// stream's ordered source blocks; sourceRow is where row is.
var sourceNames = []string{"version", "connector", "name", "ts_ms", "snapshot", "db", "table", "server_id", "gtid", "file", "pos", "row", "thread"}

const sourceRow = 11

// setColumns gives the table its columns and rebuilds its schemas, topic
// and decoders.
func (t *table) setColumns(cols []column, prefix string) error {
	t.cols, t.keyCols, t.keyNames, t.decs, t.fields = cols, nil, nil, make([]decoder, len(cols)), make([]string, len(cols))
	for i, c := range cols {
		t.fields[i] = capture.AvroName(c.name)
		if c.key {
			t.keyCols = append(t.keyCols, i)
			t.keyNames = append(t.keyNames, t.fields[i])
		}
		if c.kind == kText {
			d, err := charsetDecoder(c.charset)
			if err != nil {
				return fmt.Errorf("%s.%s: %w", t.full(), c.name, err)
			}
			t.decs[i] = d
		}
	}
	if len(t.keyOrder) == 0 || len(t.keyOrder) != len(t.keyCols) {
		t.keyOrder = t.keyCols
	}
	return t.buildSchemas(prefix)
}

// buildSchemas makes the table's key and envelope schemas and its topic.
func (t *table) buildSchemas(prefix string) error {
	ns := capture.AvroName(prefix) + "." + capture.AvroName(t.db) + "." + capture.AvroName(t.name)
	t.topic = capture.TopicName(prefix, t.db, t.name)
	var keyFields, valueFields []string
	for _, c := range t.cols {
		name := capture.AvroName(c.name)
		sc := c.schema(ns + "." + name)
		f := map[string]any{"name": name, "type": sc}
		if c.nullable {
			f["type"], f["default"] = capture.WithNull(sc), nil
		}
		b, err := json.Marshal(f)
		if err != nil {
			return fmt.Errorf("schema of %s.%s: %w", t.full(), c.name, err)
		}
		if c.key {
			keyFields = append(keyFields, string(b))
		}
		valueFields = append(valueFields, string(b))
	}
	var err error
	if t.keySchema, t.valueSchema, err = capture.Schemas(ns, keyFields, valueFields, sourceSchema); err != nil {
		return fmt.Errorf("%s: %w", t.full(), err)
	}
	return nil
}

// key picks the key columns out of a row; nil (no key) for a keyless
// table.
func (t *table) key(row map[string]any) any {
	if len(t.keyCols) == 0 || row == nil {
		return nil
	}
	k := make(map[string]any, len(t.keyCols))
	for _, i := range t.keyCols {
		k[t.fields[i]] = row[t.fields[i]]
	}
	return k
}

// keyOf is key for a row of the stream, carved from its slabs.
func (t *table) keyOf(st *stream, row *avrobin.Ordered) any {
	if len(t.keyCols) == 0 || row == nil {
		return nil
	}
	k := st.flat.carve(t.keyNames)
	for j, i := range t.keyCols {
		k.Values[j] = row.Values[i]
	}
	return k
}

// sameKey reports whether two images of a row have the same key.
func (t *table) sameKey(a, b *avrobin.Ordered) bool {
	for _, i := range t.keyCols {
		if !reflect.DeepEqual(a.Values[i], b.Values[i]) {
			return false
		}
	}
	return true
}
