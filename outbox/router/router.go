// Package router is the outbox transform: it turns captured outbox rows,
// and logical-decoding messages written by the outbox library's message
// mode, into events on outbox.event.<aggregatetype>, as Debezium's
// outbox event router does, with its options under snake_case names.
//
// An outbox row's insert (or snapshot read) becomes one event: topic from
// the route field (aggregatetype) through the topic template, key the
// aggregate id (so one aggregate's events keep commit order in one
// partition), value the payload (JSON text as it is, or expanded into an
// Avro record whose schema is inferred from the payloads and registered
// as it grows), headers id, type and eddy.event_id (for consumers'
// dedupe), the row's headers column, and any additional fields asked
// for. Deletes of outbox rows (the cleanup job's), their tombstones and
// truncates are not events: they are dropped. An update of an outbox row
// is a misuse: warned of and dropped, or a record error, per on_update.
// Records of other tables pass unchanged.
package router

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"slices"
	"strings"

	"github.com/eddy-cdc/eddy/connect"
	"github.com/eddy-cdc/eddy/internal/avrobin"
	elog "github.com/eddy-cdc/eddy/log"
	"github.com/eddy-cdc/eddy/outbox"
)

// HeaderEventID is the header holding the event's id, for consumers that
// dedupe.
const HeaderEventID = "eddy.event_id"

// Router is the outbox transform; New builds it.
type Router struct {
	schema, table string // table's schema or database: "" any
	prefixes      []string
	routeBy       string
	topic         string // template with ${routedByValue}
	idField       string
	keyField      string
	typeField     string
	payloadField  string
	headersField  string
	expand        bool
	additional    []additional
	failUpdates   bool
	log           *slog.Logger

	outboxTopics map[string]bool // the captured outbox table's topics, for its tombstones
	topics       map[string]string
	expanded     map[string]*inferred // by output topic
	updates      int
}

type additional struct{ field, header string }

// New builds the router from validated params.
func New(p connect.Params, env connect.Env) (connect.Transform, error) {
	r := &Router{
		prefixes: p.Strings("message_prefixes"), routeBy: p.String("route_by_field"), topic: p.String("topic"),
		idField: p.String("field_event_id"), keyField: p.String("field_event_key"), typeField: p.String("field_event_type"),
		payloadField: p.String("field_payload"), headersField: p.String("field_headers"),
		expand: p.Bool("expand_json"), failUpdates: p.String("on_update") == "fail", log: env.Logger,
		outboxTopics: map[string]bool{}, topics: map[string]string{}, expanded: map[string]*inferred{},
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	table := p.String("table")
	if i := strings.LastIndexByte(table, '.'); i >= 0 {
		r.schema, r.table = table[:i], table[i+1:]
	} else {
		r.table = table
	}
	if r.table == "" {
		return nil, errors.New("table: empty")
	}
	if !strings.Contains(r.topic, "${routedByValue}") {
		if err := elog.ValidateTopicName(r.topic); err != nil {
			return nil, fmt.Errorf("topic %q: %w", r.topic, err)
		}
	}
	for _, a := range p.Strings("fields_additional") {
		parts := strings.Split(a, ":")
		if len(parts) < 2 || len(parts) > 3 || parts[0] == "" {
			return nil, fmt.Errorf("fields_additional: %q: want field:header or field:header:name", a)
		}
		if parts[1] != "header" {
			return nil, fmt.Errorf("fields_additional: %q: placement %q: only header is supported (Debezium's envelope placement is not)", a, parts[1])
		}
		ad := additional{field: parts[0], header: parts[0]}
		if len(parts) == 3 && parts[2] != "" {
			ad.header = parts[2]
		}
		r.additional = append(r.additional, ad)
	}
	return r, nil
}

// Apply routes an outbox record; others pass as they are.
func (r *Router) Apply(rec *connect.Record) (bool, error) {
	if rec.Value == nil {
		return !r.outboxTopics[rec.Topic], nil // an outbox row's tombstone is no event
	}
	env, ok := rec.Value.(map[string]any)
	if !ok {
		return true, nil
	}
	op, _ := env["op"].(string)
	if op == "m" {
		return r.message(rec, env)
	}
	src := fields(env["source"])
	if src == nil || !r.isOutbox(src) {
		return true, nil
	}
	r.outboxTopics[rec.Topic] = true
	switch op {
	case "c", "r":
	case "u":
		r.updates++
		if r.failUpdates {
			return false, fmt.Errorf("outbox: an update of a row of %s (outbox rows are inserted, never updated; on_update: warn drops them)", rec.Topic)
		}
		if r.updates == 1 || r.updates%1000 == 0 {
			r.log.Warn("outbox: updates of outbox rows are not events: dropped", "topic", rec.Topic, "updates", r.updates)
		}
		return false, nil
	default: // d: the cleanup's deletes; t: a truncate
		return false, nil
	}
	row := fields(env["after"])
	if row == nil {
		return false, fmt.Errorf("outbox: a %s of %s without its row", op, rec.Topic)
	}
	ev := event{id: text(row[r.idField]), key: text(row[r.keyField]), typ: text(row[r.typeField]), route: text(row[r.routeBy])}
	if ev.route == "" {
		return false, fmt.Errorf("outbox: row %s of %s has no %s to route by", ev.id, rec.Topic, r.routeBy)
	}
	var err error
	if ev.payload, err = jsonBytes(row[r.payloadField]); err != nil {
		return false, fmt.Errorf("outbox: row %s of %s: %s: %w", ev.id, rec.Topic, r.payloadField, err)
	}
	if h, err := jsonBytes(row[r.headersField]); err != nil {
		return false, fmt.Errorf("outbox: row %s of %s: %s: %w", ev.id, rec.Topic, r.headersField, err)
	} else if h != nil {
		if ev.headers, err = headerMap(h); err != nil {
			return false, fmt.Errorf("outbox: row %s of %s: %s: %w", ev.id, rec.Topic, r.headersField, err)
		}
	}
	for _, a := range r.additional {
		if v, ok := row[a.field]; ok && v != nil {
			ev.extra = append(ev.extra, elog.Header{Key: a.header, Value: []byte(text(v))})
		}
	}
	return true, r.route(rec, ev)
}

// message routes a logical-decoding message of the outbox library.
func (r *Router) message(rec *connect.Record, env map[string]any) (bool, error) {
	m := fields(env["message"])
	prefix, _ := m["prefix"].(string)
	if !slices.Contains(r.prefixes, prefix) {
		return true, nil
	}
	content, _ := m["content"].([]byte)
	var msg outbox.Message
	if err := json.Unmarshal(content, &msg); err != nil {
		return false, fmt.Errorf("outbox: message of prefix %s is not an outbox event: %v", prefix, err)
	}
	ev := event{id: msg.ID, key: msg.AggregateID, typ: msg.Type, route: msg.AggregateType, headers: msg.Headers}
	if r.routeBy != "aggregatetype" {
		var all map[string]json.RawMessage
		json.Unmarshal(content, &all)
		ev.route = text(all[r.routeBy])
	}
	if ev.route == "" {
		return false, fmt.Errorf("outbox: message %s has no %s to route by", ev.id, r.routeBy)
	}
	if len(msg.Payload) > 0 && string(msg.Payload) != "null" {
		ev.payload = msg.Payload
	}
	return true, r.route(rec, ev)
}

type event struct {
	id, key, typ, route string
	payload             []byte // JSON; nil: none
	headers             map[string]string
	extra               []elog.Header
}

func (r *Router) route(rec *connect.Record, ev event) error {
	topic, ok := r.topics[ev.route]
	if !ok {
		topic = strings.ReplaceAll(r.topic, "${routedByValue}", ev.route)
		if err := elog.ValidateTopicName(topic); err != nil {
			return fmt.Errorf("outbox: event %s routed to %q: %w", ev.id, topic, err)
		}
		if len(r.topics) >= 10000 {
			clear(r.topics)
		}
		r.topics[ev.route] = topic
	}
	rec.Topic = topic
	rec.Key, rec.KeySchema = ev.key, nil
	if ev.key == "" {
		rec.Key = nil
	}
	rec.Value, rec.ValueSchema = nil, nil
	if ev.payload != nil {
		if r.expand {
			v, s, err := r.expandJSON(topic, ev.payload)
			if err != nil {
				return fmt.Errorf("outbox: event %s: expand_json: %w", ev.id, err)
			}
			rec.Value, rec.ValueSchema = v, s
		} else {
			rec.Value = ev.payload
		}
	}
	hs := make([]elog.Header, 0, 3+len(ev.headers)+len(ev.extra))
	hs = append(hs, elog.Header{Key: "id", Value: []byte(ev.id)})
	if ev.typ != "" {
		hs = append(hs, elog.Header{Key: "type", Value: []byte(ev.typ)})
	}
	hs = append(hs, elog.Header{Key: HeaderEventID, Value: []byte(ev.id)})
	keys := make([]string, 0, len(ev.headers))
	for k := range ev.headers {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		hs = append(hs, elog.Header{Key: k, Value: []byte(ev.headers[k])})
	}
	rec.Headers = append(hs, ev.extra...)
	rec.Broadcast = false
	return nil
}

func (r *Router) isOutbox(src map[string]any) bool {
	if t, _ := src["table"].(string); t != r.table {
		return false
	}
	if r.schema == "" {
		return true
	}
	s, _ := src["schema"].(string)
	if s == "" {
		s, _ = src["db"].(string) // MySQL: the database
	}
	return s == r.schema
}

// fields is a record of the value model as a map.
func fields(v any) map[string]any {
	switch x := v.(type) {
	case map[string]any:
		return x
	case *avrobin.Ordered:
		if x != nil {
			return x.Map()
		}
	}
	return nil
}

// text is a column's value as text.
func text(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case []byte:
		return string(x)
	case json.RawMessage:
		var s string
		if json.Unmarshal(x, &s) == nil {
			return s
		}
		return string(x)
	case *big.Rat:
		return x.RatString()
	}
	return fmt.Sprint(v)
}

// jsonBytes is a payload column's value as JSON text: a json, jsonb or
// text column's string as it is (checked), other values marshalled; nil
// for NULL.
func jsonBytes(v any) ([]byte, error) {
	var b []byte
	switch x := v.(type) {
	case nil:
		return nil, nil
	case string:
		b = []byte(x)
	case []byte:
		b = x
	default:
		return json.Marshal(v)
	}
	b = bytes.TrimSpace(b)
	if !json.Valid(b) {
		return nil, errors.New("not JSON")
	}
	if string(b) == "null" {
		return nil, nil
	}
	return b, nil
}

// headerMap reads a headers column: a JSON object, its values strings
// (other values as their JSON text).
func headerMap(b []byte) (map[string]string, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, errors.New("not a JSON object")
	}
	out := make(map[string]string, len(raw))
	for k, v := range raw {
		out[k] = text(v)
	}
	return out, nil
}
