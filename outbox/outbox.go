// Package outbox writes events in the application's own transaction, so
// that a business change and the event announcing it commit together or
// not at all; Eddy captures them and routes them to topics (the router
// is outbox/router).
//
// Events go into an outbox table, with Debezium's column names by
// default (id, aggregatetype, aggregateid, type, payload), so tables made
// for Debezium's event router work unchanged; or, on PostgreSQL, into the
// WAL alone as transactional logical-decoding messages, with no table to
// clean up:
//
//	w, err := outbox.New(outbox.Config{Dialect: outbox.Postgres})
//	...
//	tx, err := pool.Begin(ctx)
//	tx.Exec(ctx, "insert into orders ...")
//	err = w.Write(ctx, tx, outbox.Event{AggregateType: "order", AggregateID: "42",
//		Type: "OrderCreated", Payload: []byte(`{"id":42,"total":"9.90"}`)})
//	tx.Commit(ctx)
//
// A transaction is a pgx.Tx, or a database/sql *sql.Tx of any driver
// (pgx's stdlib, go-sql-driver/mysql for MySQL and MariaDB).
package outbox

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
)

// Dialect is the database the outbox lives in.
type Dialect string

const (
	Postgres Dialect = "postgres"
	MySQL    Dialect = "mysql" // MySQL and MariaDB
)

// Mode is where events are written.
type Mode string

const (
	// ModeTable inserts a row per event into the outbox table (the
	// outbox-clean job deletes the rows once they are captured).
	ModeTable Mode = "table"
	// ModeMessage (PostgreSQL) emits each event as a transactional
	// logical-decoding message (pg_logical_emit_message): it is in the WAL,
	// committed or rolled back with the transaction, and in no table.
	ModeMessage Mode = "message"
)

// DefaultTable is the outbox table's name unless a Config says.
const DefaultTable = "outbox"

// DefaultPrefix is the logical-decoding message prefix of ModeMessage
// unless a Config says; postgres-source's `messages` parameter names it.
const DefaultPrefix = "outbox"

// Columns name the outbox table's columns. Empty ones take Debezium's
// names; Headers (a JSON object of strings) is Eddy's addition, written
// only for events that have headers, so a table without it takes every
// event without.
type Columns struct {
	ID            string
	AggregateType string
	AggregateID   string
	Type          string
	Payload       string
	Headers       string
}

func (c Columns) withDefaults() Columns {
	def := func(s *string, d string) {
		if *s == "" {
			*s = d
		}
	}
	def(&c.ID, "id")
	def(&c.AggregateType, "aggregatetype")
	def(&c.AggregateID, "aggregateid")
	def(&c.Type, "type")
	def(&c.Payload, "payload")
	def(&c.Headers, "headers")
	return c
}

// Config says where a Writer writes.
type Config struct {
	Dialect Dialect
	// Table is the outbox table, optionally schema- (PostgreSQL) or
	// database-qualified (MySQL): public.outbox. Default outbox.
	Table   string
	Columns Columns
	Mode    Mode   // default ModeTable
	Prefix  string // ModeMessage's message prefix; default outbox
}

// Event is one event to write.
type Event struct {
	// ID identifies the event (consumers dedupe by it); zero: a new
	// UUIDv7, which sorts by time.
	ID uuid.UUID
	// AggregateType routes the event: to topic outbox.event.<type> by
	// default.
	AggregateType string
	// AggregateID is the event's key: the events of one aggregate keep
	// their commit order in one partition.
	AggregateID string
	// Type is the event's type (OrderCreated), carried in a header.
	Type string
	// Payload is the event's value as JSON text (a json.RawMessage, or
	// the bytes of json.Marshal); nil writes none (a null value).
	Payload []byte
	// Headers are extra headers for the event's record.
	Headers map[string]string
}

// Writer writes events into transactions. It holds no connection and is
// safe for concurrent use.
type Writer struct {
	cfg     Config
	cols    Columns
	table   string // quoted
	prefix  string
	dialect Dialect
}

// New checks a Config and returns a Writer for it.
func New(cfg Config) (*Writer, error) {
	if cfg.Dialect != Postgres && cfg.Dialect != MySQL {
		return nil, fmt.Errorf("outbox: dialect %q: want %q or %q", cfg.Dialect, Postgres, MySQL)
	}
	if cfg.Mode == "" {
		cfg.Mode = ModeTable
	}
	switch cfg.Mode {
	case ModeTable:
	case ModeMessage:
		if cfg.Dialect != Postgres {
			return nil, fmt.Errorf("outbox: mode %q needs PostgreSQL (pg_logical_emit_message)", ModeMessage)
		}
	default:
		return nil, fmt.Errorf("outbox: mode %q: want %q or %q", cfg.Mode, ModeTable, ModeMessage)
	}
	if cfg.Table == "" {
		cfg.Table = DefaultTable
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	cfg.Columns = cfg.Columns.withDefaults()
	table, err := quoteName(cfg.Dialect, cfg.Table)
	if err != nil {
		return nil, err
	}
	return &Writer{cfg: cfg, cols: cfg.Columns, table: table, prefix: cfg.Prefix, dialect: cfg.Dialect}, nil
}

// Write writes events in tx, which is a pgx.Tx or a *sql.Tx (or anything
// with pgx's Exec or database/sql's ExecContext): they commit with it, or
// vanish with its rollback. Events given no ID get a UUIDv7, set in
// events in place so the caller knows it.
func (w *Writer) Write(ctx context.Context, tx any, events ...Event) error {
	if len(events) == 0 {
		return nil
	}
	for i := range events {
		if err := prepare(&events[i]); err != nil {
			return fmt.Errorf("outbox: event %d: %w", i, err)
		}
	}
	var q string
	var args []any
	if w.cfg.Mode == ModeMessage {
		q, args = w.messages(events)
	} else {
		q, args = w.insert(events)
	}
	if err := execute(ctx, tx, q, args...); err != nil {
		return fmt.Errorf("outbox: write %d events to %s: %w", len(events), w.cfg.Table, err)
	}
	return nil
}

func prepare(e *Event) error {
	if e.AggregateType == "" {
		return errors.New("no AggregateType: it routes the event")
	}
	if e.AggregateID == "" {
		return errors.New("no AggregateID: it is the event's key")
	}
	if e.Payload != nil && !json.Valid(e.Payload) {
		return fmt.Errorf("payload of %s %s is not JSON", e.AggregateType, e.AggregateID)
	}
	if e.ID == uuid.Nil {
		id, err := uuid.NewV7()
		if err != nil {
			return fmt.Errorf("new event id: %w", err)
		}
		e.ID = id
	}
	return nil
}

// insert is one INSERT of every event; the headers column is named only
// when an event has headers.
func (w *Writer) insert(events []Event) (string, []any) {
	withHeaders := false
	for _, e := range events {
		withHeaders = withHeaders || len(e.Headers) > 0
	}
	cols := []string{w.cols.ID, w.cols.AggregateType, w.cols.AggregateID, w.cols.Type, w.cols.Payload}
	if withHeaders {
		cols = append(cols, w.cols.Headers)
	}
	var b strings.Builder
	b.WriteString("INSERT INTO ")
	b.WriteString(w.table)
	b.WriteString(" (")
	for i, c := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quoteIdent(w.dialect, c))
	}
	b.WriteString(") VALUES ")
	args := make([]any, 0, len(events)*len(cols))
	for i, e := range events {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		row := []any{e.ID.String(), e.AggregateType, e.AggregateID, e.Type, jsonArg(e.Payload)}
		if withHeaders {
			row = append(row, headersArg(e.Headers))
		}
		for j, v := range row {
			if j > 0 {
				b.WriteString(", ")
			}
			args = append(args, v)
			b.WriteString(w.placeholder(len(args)))
		}
		b.WriteByte(')')
	}
	return b.String(), args
}

// Message is the content of a ModeMessage logical-decoding message: the
// event as JSON, with Debezium's column names as its keys.
type Message struct {
	ID            string            `json:"id"`
	AggregateType string            `json:"aggregatetype"`
	AggregateID   string            `json:"aggregateid"`
	Type          string            `json:"type"`
	Payload       json.RawMessage   `json:"payload"`
	Headers       map[string]string `json:"headers,omitempty"`
}

// messages is one SELECT emitting a message per event.
func (w *Writer) messages(events []Event) (string, []any) {
	var b strings.Builder
	b.WriteString("SELECT ")
	args := []any{w.prefix}
	for i, e := range events {
		if i > 0 {
			b.WriteString(", ")
		}
		m := Message{ID: e.ID.String(), AggregateType: e.AggregateType, AggregateID: e.AggregateID, Type: e.Type,
			Payload: json.RawMessage(e.Payload), Headers: e.Headers}
		if m.Payload == nil {
			m.Payload = json.RawMessage("null")
		}
		content, _ := json.Marshal(m) // strings, a map of strings and valid JSON: it cannot fail
		args = append(args, string(content))
		fmt.Fprintf(&b, "pg_logical_emit_message(true, $1, $%d::text)", len(args))
	}
	return b.String(), args
}

func (w *Writer) placeholder(n int) string {
	if w.dialect == Postgres {
		return fmt.Sprintf("$%d", n)
	}
	return "?"
}

// jsonArg is a JSON payload as a statement argument: text (PostgreSQL
// casts it to the column's json or jsonb; MySQL parses it), or NULL.
func jsonArg(p []byte) any {
	if p == nil {
		return nil
	}
	return string(p)
}

func headersArg(h map[string]string) any {
	if len(h) == 0 {
		return nil
	}
	b, _ := json.Marshal(h) // a map of strings: it cannot fail
	return string(b)
}

type pgxExecer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

type sqlExecer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// execute runs a statement on a pgx or database/sql transaction (or
// connection, or pool).
func execute(ctx context.Context, on any, q string, args ...any) error {
	switch x := on.(type) {
	case pgxExecer:
		_, err := x.Exec(ctx, q, args...)
		return err
	case sqlExecer:
		_, err := x.ExecContext(ctx, q, args...)
		return err
	case nil:
		return errors.New("no transaction")
	}
	return fmt.Errorf("a %T is neither a pgx.Tx nor a *sql.Tx", on)
}

// quoteName quotes a table name, qualified or not.
func quoteName(d Dialect, name string) (string, error) {
	parts := strings.Split(name, ".")
	if len(parts) > 2 {
		return "", fmt.Errorf("outbox: table %q: want table or schema.table", name)
	}
	for i, p := range parts {
		if p == "" {
			return "", fmt.Errorf("outbox: table %q: an empty name", name)
		}
		parts[i] = quoteIdent(d, p)
	}
	return strings.Join(parts, "."), nil
}

func quoteIdent(d Dialect, s string) string {
	if d == MySQL {
		return "`" + strings.ReplaceAll(s, "`", "``") + "`"
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}
