package sql

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/hamba/avro/v2"

	"github.com/eddy-cdc/eddy/connect"
	"github.com/eddy-cdc/eddy/internal/avrobin"
)

// change is one record as a row operation.
type change struct {
	truncate bool   // the table starts over (a TRUNCATE, or a snapshot taken again)
	pos      []byte // the source position (eddy.position), when the record has one; it aliases the fetched log data, valid during Write only
	table    string
	key      map[string]any // primary-key columns and values
	row      map[string]any // the row to upsert; nil for a delete (or when raw holds it)
	schema   *avro.RecordSchema
	index    int // in the Write call
	op       byte
	// raw is the row to upsert still in Avro binary (the after-image's
	// fields, in schema's order), from the envelope val.
	raw []byte
	val *connect.AvroValue
	// rawKey is the key still in Avro binary, when ident reads it; key
	// is then decoded only if needed (keyMap).
	rawKey *connect.AvroValue
	ident  *keyIdent
	// unavailable names the columns an upsert does not carry
	// (connect.HeaderUnavailable): the target keeps what it has there.
	unavailable []string
}

// keyMap returns the key's columns and values, decoding a raw key.
func (c *change) keyMap() (map[string]any, error) {
	if c.key != nil || c.rawKey == nil {
		return c.key, nil
	}
	v, err := c.rawKey.Decode()
	if err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("key is a %T, not a record", v)
	}
	c.key = m
	return m, nil
}

// upsert says whether the change writes a row (else it deletes one).
func (c *change) upsert() bool { return c.row != nil || c.raw != nil }

// decodeRow fills row from raw, for the paths that need the values.
func (c *change) decodeRow() error {
	if c.row != nil || c.raw == nil {
		return nil
	}
	v, err := c.val.Decode()
	if err != nil {
		return err
	}
	env, _ := v.(map[string]any)
	if c.row, _ = env["after"].(map[string]any); c.row == nil {
		return fmt.Errorf("the envelope has no after-image")
	}
	return nil
}

// toChange reads a record in Debezium's envelope or flattened (after
// unwrap). ok is false for a record with nothing to apply (a tombstone
// when deletes are off, a truncate).
func (s *sinkBase) toChange(r *connect.Record, i int) (change, bool, error) {
	c := change{index: i}
	// A raw key stays raw for a raw value whose key identity reads from
	// the bytes (the common case: created and updated rows collapse on
	// it); otherwise it is decoded.
	if rk, ok := r.Key.(*connect.AvroValue); ok {
		if _, rawValue := r.Value.(*connect.AvroValue); rawValue {
			c.ident = s.keyIdent(rk.Schema)
		}
		if c.ident != nil {
			c.rawKey = rk
		} else if err := s.decodeKey(r); err != nil {
			return c, false, err
		}
	}
	key, _ := r.Key.(map[string]any)
	hasKey := key != nil || c.rawKey != nil
	var table string
	var end readEnd // readRow
	var err error
	switch v := r.Value.(type) {
	case *connect.AvroValue:
		if table, end, err = s.rawChange(r, v, &c, hasKey); end == readDecoded {
			dv, err := v.Decode()
			if err != nil {
				return c, false, err
			}
			r.Value = dv
			return s.toChange(r, i) // with the key decoded, as the value is no longer raw
		}
	case nil: // a tombstone
		if !s.deletes || key == nil {
			return c, false, nil
		}
		c.key = key
	case map[string]any:
		table, end, err = s.mapChange(r, v, &c, key)
	default:
		return c, false, fmt.Errorf("value is a %T, not a row", r.Value)
	}
	if err != nil || end == readSkip {
		return c, false, err
	}
	if end == readDone {
		return c, true, nil
	}
	return s.finishChange(r, c, table, key, hasKey)
}

// How reading a record's value ends.
type readEnd uint8

const (
	readRow     readEnd = iota // a row's change: the key and table checks follow
	readSkip                   // nothing to apply
	readDone                   // complete as it is (a truncate)
	readDecoded                // the raw path does not read it: decode and read again
)

// rawChange reads an Avro envelope from its bytes.
func (s *sinkBase) rawChange(r *connect.Record, v *connect.AvroValue, c *change, hasKey bool) (string, readEnd, error) {
	env, sc, ok := s.scanRaw(v)
	if ok {
		if err := s.accept(kindEnvelope); err != nil {
			return "", readSkip, err
		}
	}
	switch {
	case ok && (sc.Op == 'c' || sc.Op == 'u' || sc.Op == 'r') && sc.After != nil:
		c.raw, c.val, c.op, c.schema = sc.After, v, sc.Op, env.After()
	case ok && sc.Op == 'd' && hasKey:
		if !s.deletes {
			return "", readSkip, nil
		}
		if _, err := c.keyMap(); err != nil { // a delete reads its key
			return "", readSkip, err
		}
		c.op = sc.Op
	default: // a truncate, a keyless delete, a flattened record: the value model
		return "", readDecoded, nil
	}
	return s.rawTableName(r.Topic, sc), readRow, nil
}

// mapChange reads a decoded envelope or flattened row.
func (s *sinkBase) mapChange(r *connect.Record, v map[string]any, c *change, key map[string]any) (string, readEnd, error) {
	op, isEnv := v["op"].(string)
	isEnv = isEnv && (v["after"] != nil || v["before"] != nil || op == "t" || op == "d")
	kind := kindFlattened
	if isEnv {
		kind = kindEnvelope
	}
	if err := s.accept(kind); err != nil {
		return "", readSkip, err
	}
	if !isEnv {
		if d, _ := v["__deleted"].(string); d == "true" {
			if !s.deletes {
				return "", readSkip, nil
			}
			c.key = key
		} else {
			c.row = v
			if rs, ok := r.ValueSchema.(*avro.RecordSchema); ok {
				c.schema = rs
			}
		}
		return s.tableName(r.Topic, nil), readRow, nil
	}
	src, _ := v["source"].(map[string]any)
	table := s.tableName(r.Topic, src)
	if len(op) == 1 {
		c.op = op[0]
	}
	switch op {
	case "c", "u", "r":
		c.row, _ = v["after"].(map[string]any)
		c.schema = rowSchema(r.ValueSchema, "after")
	case "d":
		if !s.deletes {
			return "", readSkip, nil
		}
		if key == nil {
			key, _ = v["before"].(map[string]any)
		}
		c.key = key
	case "t":
		c.truncate, c.table = true, table
		c.pos = r.Header(connect.HeaderPosition)
		return table, readDone, nil
	default:
		return "", readSkip, nil
	}
	return table, readRow, nil
}

// finishChange checks a row's change for its key and table and takes
// its position.
func (s *sinkBase) finishChange(r *connect.Record, c change, table string, key map[string]any, hasKey bool) (change, bool, error) {
	if table == "" {
		table = s.tableName(r.Topic, nil)
	}
	c.table = table
	if c.upsert() && !hasKey && s.pkMode == keyFromRecord {
		// Not the record's fault: every record of such a table (one with
		// no primary key, under REPLICA IDENTITY FULL) is keyless, so the
		// table fails the task once, visibly, instead of dead-lettering
		// each of its rows.
		return c, false, connect.Permanent(fmt.Errorf("%s: a record without a key cannot be upserted by record_key (the source table has no primary key): set primary_key: fields with primary_key_fields naming columns that identify a row, or mode: insert to append rows", table))
	}
	if c.upsert() {
		c.key = key // nil for a raw key
	}
	if c.key == nil && c.rawKey == nil && !c.upsert() {
		return c, false, nil
	}
	c.pos = r.Header(connect.HeaderPosition)
	if h := r.Header(connect.HeaderUnavailable); len(h) > 0 && c.upsert() {
		c.unavailable = strings.Split(string(h), ",")
	}
	return c, true, nil
}

// fillUnavailable completes a change that lacks some columns with what
// the same key's earlier change in the batch (prev, which it replaces)
// says of them: the target does not hold prev yet, so that is the row's
// value. Columns neither carries stay unavailable.
func fillUnavailable(c, prev *change) error {
	if err := c.decodeRow(); err != nil {
		return fmt.Errorf("%s: %w", c.table, err)
	}
	if err := prev.decodeRow(); err != nil {
		return fmt.Errorf("%s: %w", prev.table, err)
	}
	var still []string
	for _, name := range c.unavailable {
		v, ok := prev.row[name]
		if !ok || slices.Contains(prev.unavailable, name) {
			still = append(still, name)
			continue
		}
		c.row[name] = v
	}
	c.unavailable = still
	return nil
}

// partialKey is the key a change that lacks columns updates its row by:
// the record's key, or primary_key_fields from the row.
func (s *sinkBase) partialKey(c *change) (map[string]any, error) {
	if s.pkMode == keyFromFields {
		k := make(map[string]any, len(s.pkFields))
		for _, f := range s.pkFields {
			k[f] = c.row[f]
		}
		return k, nil
	}
	k, err := c.keyMap()
	if err == nil && len(k) == 0 {
		err = fmt.Errorf("%s: a change without a key lacks columns %s, so no row can be updated with the rest", c.table, strings.Join(c.unavailable, ", "))
	}
	return k, err
}

// ErrNoRowToKeep is a change that lacks some columns' values (unchanged
// out-of-line values the source did not log) for a key the target has no
// row of: writing it would put placeholders in the row.
var ErrNoRowToKeep = errors.New("the target has no row to keep the missing columns from")

func noRowToKeep(c *change, key map[string]any) error {
	return fmt.Errorf("%s: key %v: %w: the change does not carry %s (unchanged values PostgreSQL did not log); take a new snapshot of the table, or set REPLICA IDENTITY FULL on it so updates carry them",
		c.table, key, ErrNoRowToKeep, strings.Join(c.unavailable, ", "))
}

// accept refuses a record of a kind (envelope or flattened) the sink's
// accepts param does not take.
func (s *sinkBase) accept(kind recordKind) error {
	if s.accepts == "" || s.accepts == kindAny || s.accepts == kind {
		return nil
	}
	return fmt.Errorf("the record is %s, and the sink accepts %s records only", map[recordKind]string{kindEnvelope: "a Debezium envelope", kindFlattened: "flattened"}[kind], s.accepts)
}

// decodeKey turns a raw key into the value model, for the paths that
// read the key's values.
func (s *sinkBase) decodeKey(r *connect.Record) error {
	rk, ok := r.Key.(*connect.AvroValue)
	if !ok {
		return nil
	}
	k, err := rk.Decode()
	if err != nil {
		return fmt.Errorf("key: %w", err)
	}
	r.Key = k
	return nil
}

// keyIdent returns the identity reader of a key schema, compiled the
// first time; nil when the key is to be decoded.
func (s *sinkBase) keyIdent(schema avro.Schema) *keyIdent {
	k, seen := s.idents[schema]
	if !seen {
		k = compileKeyIdent(schema)
		if len(s.idents) >= 1000 {
			clear(s.idents)
		}
		s.idents[schema] = k
	}
	return k
}

// scanRaw reads an Avro envelope's op, source and after-image without
// decoding it; ok is false when the schema is not an envelope the raw
// path reads, or the bytes do not scan (decoding then says why).
func (s *sinkBase) scanRaw(v *connect.AvroValue) (*avrobin.Envelope, avrobin.Scanned, bool) {
	env, seen := s.envelopes[v.Schema]
	if !seen {
		env = avrobin.CompileEnvelope(v.Schema)
		if len(s.envelopes) >= 1000 {
			clear(s.envelopes)
		}
		s.envelopes[v.Schema] = env
	}
	if env == nil {
		return nil, avrobin.Scanned{}, false
	}
	sc, err := env.Scan(&s.rd, v.Body)
	return env, sc, err == nil
}

// rawTableName is tableName for a scanned envelope; the last name is
// kept, so a run of one table's records renders it once.
func (s *sinkBase) rawTableName(topic string, sc avrobin.Scanned) string {
	l := &s.lastRaw
	if l.name != "" && l.topic == topic && l.hasSource == sc.HasSource &&
		sameBytes(l.schema, sc.Schema) && sameBytes(l.table, sc.Table) {
		return l.name
	}
	var src map[string]any
	if sc.HasSource {
		src = map[string]any{}
		if sc.Schema != nil {
			src["schema"] = string(sc.Schema)
		}
		if sc.Table != nil {
			src["table"] = string(sc.Table)
		}
	}
	name := s.tableName(topic, src)
	*l = lastRawName{topic: topic, schema: bytes.Clone(sc.Schema), table: bytes.Clone(sc.Table), hasSource: sc.HasSource, name: name}
	return name
}

// sameBytes tells an absent string (nil) from an empty one.
func sameBytes(a, b []byte) bool { return (a == nil) == (b == nil) && bytes.Equal(a, b) }

// lastRawName is the table name of the last scanned envelope.
type lastRawName struct {
	topic         string
	schema, table []byte
	hasSource     bool
	name          string
}

// rowSchema is the record schema of an envelope's before or after.
func rowSchema(s avro.Schema, field string) *avro.RecordSchema {
	if rs, ok := s.(*avro.RecordSchema); ok {
		for _, f := range rs.Fields() {
			if f.Name() == field {
				return avrobin.RecordBranch(f.Type())
			}
		}
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
