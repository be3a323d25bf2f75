// Package capture holds what the change-capture sources share: how a
// table's names become Avro names and topics, and nullable Avro types.
package capture

import (
	"context"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/hamba/avro/v2"
)

// AvroName makes an identifier a valid Avro name: letters, digits and _,
// not starting with a digit (Debezium's sanitize.field.names).
func AvroName(s string) string {
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

// TopicName is the topic of a table: prefix.schema.table (schema being a
// database, for MySQL), each character a topic may not hold (a space, a
// quote, a letter outside ASCII) replaced by an underscore, as Debezium
// does. Two tables may come out the same; a source refuses that.
func TopicName(prefix, schema, name string) string {
	return strings.Map(func(c rune) rune {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' {
			return c
		}
		return '_'
	}, prefix+"."+schema+"."+name)
}

// WithNull is s made nullable: ["null", s], or null added to a union (a
// union may not hold another union).
func WithNull(s avro.Schema) avro.Schema {
	members := []avro.Schema{avro.NewNullSchema()}
	if u, ok := s.(*avro.UnionSchema); ok {
		members = append(members, u.Types()...)
	} else {
		members = append(members, s)
	}
	u, _ := avro.NewUnionSchema(members)
	return u
}

// Match says whether a table's full name matches a path.Match pattern.
func Match(pattern, full string) bool {
	ok, _ := path.Match(pattern, full)
	return ok
}

// Excluded says whether a table's full name matches any of patterns.
func Excluded(patterns []string, full string) bool {
	for _, p := range patterns {
		if Match(p, full) {
			return true
		}
	}
	return false
}

// Deadline hands out one deadline context for as long as the
// deadline stays the same: making one per message cost more than decoding
// the message.
type Deadline struct {
	ctx      context.Context
	cancel   context.CancelFunc
	deadline time.Time
}

// Get returns a context of parent ending at deadline: the last one
// handed out while the deadline is the same and it has not ended.
func (r *Deadline) Get(parent context.Context, deadline time.Time) context.Context {
	if r.ctx == nil || !deadline.Equal(r.deadline) || r.ctx.Err() != nil {
		r.Stop()
		r.ctx, r.cancel = context.WithDeadline(parent, deadline)
		r.deadline = deadline
	}
	return r.ctx
}

// Stop releases the context last handed out.
func (r *Deadline) Stop() {
	if r.cancel != nil {
		r.cancel()
	}
}

// Schemas parses a table's key schema (nil when it has no key fields)
// and its Debezium envelope: before and after images of the Value record
// of valueFields, the source record (source, a schema's JSON), op and
// ts_ms. Fields are Avro field definitions in JSON; ns is the namespace
// of the Key, Value and Envelope records.
func Schemas(ns string, keyFields, valueFields []string, source string) (key, value avro.Schema, err error) {
	if len(keyFields) > 0 {
		key, err = avro.ParseWithCache(fmt.Sprintf(`{"type":"record","name":"Key","namespace":%q,"fields":[%s]}`, ns, strings.Join(keyFields, ",")), "", &avro.SchemaCache{})
		if err != nil {
			return nil, nil, fmt.Errorf("key schema: %w", err)
		}
	}
	envelope := fmt.Sprintf(`{"type":"record","name":"Envelope","namespace":%q,"fields":[
		{"name":"before","type":["null",{"type":"record","name":"Value","fields":[%s]}],"default":null},
		{"name":"after","type":["null","Value"],"default":null},
		{"name":"source","type":%s},
		{"name":"op","type":"string"},
		{"name":"ts_ms","type":["null","long"],"default":null}]}`, ns, strings.Join(valueFields, ","), source)
	if value, err = avro.ParseWithCache(envelope, "", &avro.SchemaCache{}); err != nil {
		return nil, nil, fmt.Errorf("value schema: %w", err)
	}
	return key, value, nil
}
