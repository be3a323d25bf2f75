package postgres

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/hamba/avro/v2"
)

// table is a captured table as the stream and the snapshot see it.
type table struct {
	relID       uint32
	schema      string
	name        string
	cols        []column
	keyCols     []int // into cols
	index       int   // in the connector's table list, for snapshot positions
	partitioned bool  // declaratively partitioned: its rows are its partitions'
	stale       bool  // a value showed a type changed (refreshStale)

	topic       string
	keySchema   avro.Schema
	valueSchema avro.Schema
}

// avroName makes an identifier a valid Avro name: letters, digits and _,
// not starting with a digit (Debezium's sanitize.field.names).
func avroName(s string) string {
	var b strings.Builder
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '_':
			b.WriteRune(r)
		case r >= '0' && r <= '9':
			if i == 0 {
				b.WriteByte('_')
			}
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "_"
	}
	return b.String()
}

// sourceSchema is the "source" block of every event.
const sourceSchema = `{"type":"record","name":"Source","namespace":"io.eddy.postgres","fields":[
	{"name":"version","type":"string"},
	{"name":"connector","type":"string"},
	{"name":"name","type":"string"},
	{"name":"ts_ms","type":"long"},
	{"name":"snapshot","type":["null","string"],"default":null},
	{"name":"db","type":"string"},
	{"name":"schema","type":"string"},
	{"name":"table","type":"string"},
	{"name":"txId","type":["null","long"],"default":null},
	{"name":"lsn","type":["null","long"],"default":null}]}`

// buildSchemas makes the table's key and envelope schemas and its topic.
func (t *table) buildSchemas(prefix string) error {
	ns := avroName(prefix) + "." + avroName(t.schema) + "." + avroName(t.name)
	t.topic = topicName(prefix, t.schema, t.name)
	var keyFields, valueFields []json.RawMessage
	for _, c := range t.cols {
		f := map[string]any{"name": avroName(c.name), "type": c.schema}
		for k, v := range c.props {
			f[k] = v
		}
		if c.key {
			b, err := json.Marshal(f)
			if err != nil {
				return err
			}
			keyFields = append(keyFields, b)
			valueFields = append(valueFields, b)
			continue
		}
		f["type"], f["default"] = withNull(c.schema), nil
		b, err := json.Marshal(f)
		if err != nil {
			return err
		}
		valueFields = append(valueFields, b)
	}
	join := func(fs []json.RawMessage) string {
		parts := make([]string, len(fs))
		for i, f := range fs {
			parts[i] = string(f)
		}
		return strings.Join(parts, ",")
	}
	cache := &avro.SchemaCache{}
	var err error
	if len(keyFields) > 0 {
		if t.keySchema, err = avro.ParseWithCache(fmt.Sprintf(`{"type":"record","name":"Key","namespace":%q,"fields":[%s]}`, ns, join(keyFields)), "", cache); err != nil {
			return fmt.Errorf("key schema of %s.%s: %w", t.schema, t.name, err)
		}
	}
	value := fmt.Sprintf(`{"type":"record","name":"Envelope","namespace":%q,"fields":[
		{"name":"before","type":["null",{"type":"record","name":"Value","fields":[%s]}],"default":null},
		{"name":"after","type":["null","Value"],"default":null},
		{"name":"source","type":%s},
		{"name":"op","type":"string"},
		{"name":"ts_ms","type":["null","long"],"default":null}]}`, ns, join(valueFields), sourceSchema)
	if t.valueSchema, err = avro.ParseWithCache(value, "", cache); err != nil {
		return fmt.Errorf("value schema of %s.%s: %w", t.schema, t.name, err)
	}
	return nil
}

// row decodes text-format values (nil for NULL) into a row map.
func (t *table) row(vals []*string) (map[string]any, error) {
	m := make(map[string]any, len(t.cols))
	for i, c := range t.cols {
		if i >= len(vals) || vals[i] == nil {
			m[avroName(c.name)] = nil
			continue
		}
		v, err := c.decode(*vals[i])
		if err != nil {
			return nil, fmt.Errorf("%s.%s.%s: %w", t.schema, t.name, c.name, err)
		}
		m[avroName(c.name)] = v
	}
	return m, nil
}

// key picks the key columns out of a row; nil (no key) for a keyless
// table.
func (t *table) key(row map[string]any) any {
	if len(t.keyCols) == 0 || row == nil {
		return nil
	}
	k := make(map[string]any, len(t.keyCols))
	for _, i := range t.keyCols {
		n := avroName(t.cols[i].name)
		k[n] = row[n]
	}
	return k
}
