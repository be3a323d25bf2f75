package postgres

import (
	"encoding/json"
	"fmt"

	"github.com/hamba/avro/v2"

	"github.com/eddy-cdc/eddy/internal/capture"
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
	ns := capture.AvroName(prefix) + "." + capture.AvroName(t.schema) + "." + capture.AvroName(t.name)
	t.topic = capture.TopicName(prefix, t.schema, t.name)
	var keyFields, valueFields []string
	for _, c := range t.cols {
		f := map[string]any{"name": capture.AvroName(c.name), "type": c.schema}
		for k, v := range c.props {
			f[k] = v
		}
		if !c.key {
			f["type"], f["default"] = capture.WithNull(c.schema), nil
		}
		b, err := json.Marshal(f)
		if err != nil {
			return err
		}
		if c.key {
			keyFields = append(keyFields, string(b))
		}
		valueFields = append(valueFields, string(b))
	}
	var err error
	if t.keySchema, t.valueSchema, err = capture.Schemas(ns, keyFields, valueFields, sourceSchema); err != nil {
		return fmt.Errorf("%s.%s: %w", t.schema, t.name, err)
	}
	return nil
}

// row decodes text-format values (nil for NULL) into a row map.
func (t *table) row(vals []*string) (map[string]any, error) {
	m := make(map[string]any, len(t.cols))
	for i, c := range t.cols {
		if i >= len(vals) || vals[i] == nil {
			m[capture.AvroName(c.name)] = nil
			continue
		}
		v, err := c.decode(*vals[i])
		if err != nil {
			return nil, fmt.Errorf("%s.%s.%s: %w", t.schema, t.name, c.name, err)
		}
		m[capture.AvroName(c.name)] = v
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
		n := capture.AvroName(t.cols[i].name)
		k[n] = row[n]
	}
	return k
}
