package sql

import (
	"fmt"
	"strings"

	"github.com/hamba/avro/v2"

	"github.com/eddy-cdc/eddy/connect"
)

// change is one record as a row operation.
type change struct {
	truncate bool   // the table starts over (a TRUNCATE, or a snapshot taken again)
	pos      []byte // the source position (eddy.position), when the record has one
	table    string
	key      map[string]any // primary-key columns and values
	row      map[string]any // the row to upsert; nil for a delete
	schema   *avro.RecordSchema
	index    int // in the Write call
}

// toChange reads a record in Debezium's envelope or flattened (after
// unwrap). ok is false for a record with nothing to apply (a tombstone
// when deletes are off, a truncate).
func (s *sinkBase) toChange(r *connect.Record, i int) (change, bool, error) {
	c := change{index: i}
	key, _ := r.Key.(map[string]any)
	var table string
	switch v := r.Value.(type) {
	case nil: // a tombstone
		if !s.deletes || key == nil {
			return c, false, nil
		}
		c.key = key
	case map[string]any:
		if op, isEnv := v["op"].(string); isEnv && (v["after"] != nil || v["before"] != nil || op == "t" || op == "d") {
			src, _ := v["source"].(map[string]any)
			table = s.tableName(r.Topic, src)
			switch op {
			case "c", "u", "r":
				c.row, _ = v["after"].(map[string]any)
				c.schema = rowSchema(r.ValueSchema, "after")
			case "d":
				if !s.deletes {
					return c, false, nil
				}
				if key == nil {
					key, _ = v["before"].(map[string]any)
				}
				c.key = key
			case "t":
				c.truncate, c.table = true, table
				c.pos = r.Header(connect.HeaderPosition)
				return c, true, nil
			default:
				return c, false, nil
			}
		} else { // flattened
			table = s.tableName(r.Topic, nil)
			if d, _ := v["__deleted"].(string); d == "true" {
				if !s.deletes {
					return c, false, nil
				}
				c.key = key
			} else {
				c.row = v
				if rs, ok := r.ValueSchema.(*avro.RecordSchema); ok {
					c.schema = rs
				}
			}
		}
	default:
		return c, false, fmt.Errorf("value is a %T, not a row", r.Value)
	}
	if table == "" {
		table = s.tableName(r.Topic, nil)
	}
	c.table = table
	if c.row != nil && key == nil && s.pkMode == "record_key" {
		return c, false, fmt.Errorf("a record without a key cannot be upserted by record_key")
	}
	if c.row != nil {
		c.key = key
	}
	if c.key == nil && c.row == nil {
		return c, false, nil
	}
	c.pos = r.Header(connect.HeaderPosition)
	return c, true, nil
}

// rowSchema is the record schema of an envelope's before or after.
func rowSchema(s avro.Schema, field string) *avro.RecordSchema {
	rs, ok := s.(*avro.RecordSchema)
	if !ok {
		return nil
	}
	for _, f := range rs.Fields() {
		if f.Name() != field {
			continue
		}
		t := f.Type()
		if u, ok := t.(*avro.UnionSchema); ok {
			for _, b := range u.Types() {
				if b.Type() != avro.Null {
					t = b
				}
			}
		}
		if r, ok := t.(*avro.RefSchema); ok {
			t = r.Schema()
		}
		out, _ := t.(*avro.RecordSchema)
		return out
	}
	return nil
}

// tableName applies the table template: ${topic}, ${schema}, ${table}
// (from the source block, else the topic's last two parts).
func (s *sinkBase) tableName(topic string, src map[string]any) string {
	schemaV, _ := src["schema"].(string)
	tableV, _ := src["table"].(string)
	memo := tableKey{topic, schemaV, tableV}
	if name, ok := s.names[memo]; ok {
		return name
	}
	name := s.renderTable(topic, src)
	if len(s.names) < 10000 {
		s.names[memo] = name
	}
	return name
}

// tableKey is what a table name depends on.
type tableKey struct{ topic, schema, table string }

func (s *sinkBase) renderTable(topic string, src map[string]any) string {
	parts := strings.Split(topic, ".")
	schema, table := "", parts[len(parts)-1]
	if len(parts) >= 2 {
		schema = parts[len(parts)-2]
	}
	if v, ok := src["schema"].(string); ok {
		schema = v
	}
	if v, ok := src["table"].(string); ok {
		table = v
	}
	return strings.NewReplacer("${topic}", strings.ReplaceAll(topic, ".", "_"), "${schema}", schema, "${table}", table).Replace(s.template)
}
