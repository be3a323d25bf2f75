package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/eddy-cdc/eddy/connect"
	"github.com/eddy-cdc/eddy/internal/capture"
	elog "github.com/eddy-cdc/eddy/log"
)

// maxLinger bounds how long a batch waits for more records: the latency a
// change may gain before its append starts.
const maxLinger = 10 * time.Millisecond

// idleReturn is how long an idle poll waits before it returns nothing,
// so the runtime's loop around it (lag, retained WAL) goes on.
const idleReturn = time.Second

// pingEvery is how often an idle source asks the server how far it has
// read, so the slot follows the server's WAL while the tables are quiet.
const pingEvery = time.Second

// startStream starts pgoutput from lsn (0: the slot's confirmed position);
// records at or before position are dropped as already logged.
func (s *Source) startStream(ctx context.Context, lsn pglogrepl.LSN, position []byte) error {
	args := []string{"proto_version '1'", "publication_names '" + strings.ReplaceAll(s.cfg.publication, "'", "''") + "'"}
	if s.msgs != nil {
		args = append(args, "messages 'true'")
	}
	if err := pglogrepl.StartReplication(ctx, s.repl, s.cfg.slot, lsn, pglogrepl.StartReplicationOptions{PluginArgs: args}); err != nil {
		return fmt.Errorf("start replication from slot %s: %w", s.cfg.slot, err)
	}
	s.streaming, s.resumeAfter = true, position
	// Nothing of the stream is in flight yet: once what came before is
	// committed the source is idle, and its pings move the slot with the
	// server's WAL even before the first change (pollSnapshot counts the
	// snapshot's last read as emitted).
	s.emitted = s.committed
	s.byRel = map[uint32]*table{}
	for _, t := range s.order {
		s.byRel[t.relID] = t
	}
	s.nextStatus = time.Now().Add(10 * time.Second)
	s.nextBeat = time.Now().Add(s.cfg.heartbeat)
	s.log.Info("streaming", "slot", s.cfg.slot, "from", lsn)
	return nil
}

// pollStream reads replication messages until it has a batch, or some
// records and a short pause, keeping the connection alive meanwhile.
func (s *Source) pollStream(ctx context.Context) ([]connect.Record, error) {
	out := make([]connect.Record, 0, s.cfg.batch)
	started := time.Now()
	var first time.Time // when out got its first record
	var rd capture.Deadline
	defer rd.Stop()
	for len(out) < s.cfg.batch {
		if len(out) > 0 {
			if first.IsZero() {
				first = time.Now()
			} else if time.Since(first) >= maxLinger {
				return out, nil // under a steady trickle, do not wait for a full batch
			}
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		now := time.Now()
		idle := len(out) == 0 && !s.txn.open && bytes.Equal(s.emitted, s.committed)
		if now.After(s.nextStatus) || (idle && now.After(s.nextPing)) {
			if idle {
				s.nextPing = now.Add(pingEvery)
			}
			if err := s.sendStatus(ctx, idle); err != nil {
				return nil, err
			}
		}
		if s.cfg.heartbeat > 0 && s.cfg.heartbeatQuery != "" && now.After(s.nextBeat) && len(out) == 0 {
			s.nextBeat = now.Add(s.cfg.heartbeat)
			if _, err := s.conn.Exec(ctx, s.cfg.heartbeatQuery); err != nil {
				return nil, fmt.Errorf("heartbeat query: %w", err)
			}
		}
		deadline := s.nextStatus
		if idle && s.nextPing.Before(deadline) {
			deadline = s.nextPing
		}
		if len(out) > 0 {
			deadline = first.Add(maxLinger) // the batch goes when it is full or this old
		} else if s.cfg.heartbeat > 0 && s.nextBeat.Before(deadline) {
			deadline = s.nextBeat
		}
		if deadline.Before(now.Add(time.Millisecond)) {
			deadline = now.Add(time.Millisecond)
		}
		msg, err := s.repl.ReceiveMessage(rd.Get(ctx, deadline))
		if err != nil {
			if pgconn.Timeout(err) {
				if len(out) > 0 {
					return out, nil
				}
				if time.Since(started) >= idleReturn {
					return nil, nil // idle: the runtime's loop reads the lag and the slots meanwhile
				}
				continue
			}
			return nil, fmt.Errorf("receive from slot %s: %w", s.cfg.slot, err)
		}
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			if out, err = s.copyData(ctx, m.Data, out); err != nil {
				return nil, err
			}
		case *pgproto3.ErrorResponse:
			return nil, fmt.Errorf("slot %s: %s", s.cfg.slot, m.Message)
		}
	}
	return out, nil
}

// copyData handles one CopyData message of the replication stream: a
// primary keepalive, or XLogData carrying a pgoutput message.
func (s *Source) copyData(ctx context.Context, data []byte, out []connect.Record) ([]connect.Record, error) {
	if len(data) == 0 {
		return out, nil
	}
	switch data[0] {
	case pglogrepl.PrimaryKeepaliveMessageByteID:
		ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(data[1:])
		if err != nil {
			return out, fmt.Errorf("slot %s: keepalive: %w", s.cfg.slot, err)
		}
		if !s.txn.open {
			// The walsender has sent everything before ServerWALEnd, and
			// all of it has been handled: once what was emitted is durable,
			// the slot may move up to there (without it a shutting-down
			// server waits for us forever).
			before := s.confirmed
			s.watermark(ka.ServerWALEnd, len(out) == 0)
			if s.confirmed > before {
				s.nextStatus = time.Time{}
			}
		}
		if ka.ReplyRequested {
			s.nextStatus = time.Time{}
		}
	case pglogrepl.XLogDataByteID:
		xld, err := pglogrepl.ParseXLogData(data[1:])
		if err != nil {
			return out, fmt.Errorf("slot %s: XLogData: %w", s.cfg.slot, err)
		}
		return s.handle(ctx, xld, out)
	}
	return out, nil
}

// handle turns one pgoutput message into records.
func (s *Source) handle(ctx context.Context, xld pglogrepl.XLogData, out []connect.Record) ([]connect.Record, error) {
	msg, err := parseWAL(xld.WALData)
	if err != nil {
		return out, fmt.Errorf("decode pgoutput at %s: %w", xld.WALStart, err)
	}
	switch m := msg.(type) {
	case *pglogrepl.RelationMessage:
		return out, s.relation(ctx, m)
	case *pglogrepl.BeginMessage:
		s.txn = txnState{open: true, finalLSN: m.FinalLSN, xid: m.Xid, commitTime: m.CommitTime}
	case *pglogrepl.CommitMessage:
		s.txn.open = false
		s.watermark(m.TransactionEndLSN, len(out) == 0)
	case *pglogrepl.InsertMessage:
		t := s.byRel[m.RelationID]
		if t == nil {
			return out, nil // not a captured table
		}
		after, _, err := s.tuple(t, m.Tuple, nil)
		if err != nil {
			return out, err
		}
		if err := s.refreshStale(ctx, t); err != nil {
			return out, err
		}
		return s.emit(out, t, "c", nil, after, nil)
	case *pglogrepl.UpdateMessage:
		t := s.byRel[m.RelationID]
		if t == nil {
			return out, nil
		}
		var before map[string]any
		var err error
		if m.OldTuple != nil {
			if before, _, err = s.tuple(t, m.OldTuple, nil); err != nil {
				return out, err
			}
		}
		after, unavailable, err := s.tuple(t, m.NewTuple, before)
		if err != nil {
			return out, err
		}
		if err := s.refreshStale(ctx, t); err != nil {
			return out, err
		}
		if before != nil && m.OldTupleType == 'K' && !reflect.DeepEqual(t.key(before), t.key(after)) {
			// The key changed: a delete of the old key (and its
			// tombstone), then a create of the new one, as Debezium does.
			if out, err = s.emit(out, t, "d", before, nil, nil); err != nil {
				return out, err
			}
			return s.emit(out, t, "c", nil, after, unavailable)
		}
		return s.emit(out, t, "u", before, after, unavailable)
	case *pglogrepl.DeleteMessage:
		t := s.byRel[m.RelationID]
		if t == nil {
			return out, nil
		}
		before, _, err := s.tuple(t, m.OldTuple, nil)
		if err != nil {
			return out, err
		}
		return s.emit(out, t, "d", before, nil, nil)
	case *pglogrepl.LogicalDecodingMessage:
		return s.message(out, m), nil
	case *pglogrepl.TruncateMessage:
		for _, id := range m.RelationIDs {
			if t := s.byRel[id]; t != nil {
				if out, err = s.emit(out, t, "t", nil, nil, nil); err != nil {
					return out, err
				}
			}
		}
	}
	return out, nil
}

// parseWAL decodes one pgoutput message. pglogrepl's decoders index the
// buffer without checking its length, so a short or malformed message
// would panic: it is an error here, naming the message.
func parseWAL(data []byte) (msg pglogrepl.Message, err error) {
	if len(data) == 0 {
		return nil, errors.New("empty message")
	}
	defer func() {
		if r := recover(); r != nil {
			msg, err = nil, fmt.Errorf("malformed message of type %q, %d bytes: %v", data[0], len(data), r)
		}
	}()
	return pglogrepl.Parse(data)
}

// watermark notes that the slot may be confirmed up to lsn once every
// record emitted so far is committed; with nothing in flight (idle), that
// is now.
func (s *Source) watermark(lsn pglogrepl.LSN, idle bool) {
	if n := len(s.completed); n > 0 && bytes.Equal(s.completed[n-1].last, s.emitted) {
		s.completed[n-1].end = max(s.completed[n-1].end, lsn)
	} else {
		s.completed = append(s.completed, txnEnd{last: s.emitted, end: lsn})
	}
	if idle && bytes.Equal(s.emitted, s.committed) {
		s.release(s.committed)
	}
}

// release confirms the slot up to every watermark at or before position.
func (s *Source) release(position []byte) {
	for len(s.completed) > 0 && bytes.Compare(s.completed[0].last, position) <= 0 {
		s.confirmed = max(s.confirmed, s.completed[0].end)
		s.completed = s.completed[1:]
	}
}

// refreshStale reads the types of a table again when a value showed that
// one changed without DDL on the table (an enum's new label): the schema
// gets a new version carrying it before the event that needs it.
func (s *Source) refreshStale(ctx context.Context, t *table) error {
	if !t.stale {
		return nil
	}
	t.stale = false
	for _, c := range t.cols {
		delete(s.props, typeKey{c.oid, c.typmod})
	}
	if err := s.loadProps(ctx, t.cols); err != nil {
		return err
	}
	s.log.Info("a type changed: new schema", "table", t.schema+"."+t.name)
	return t.buildSchemas(s.cfg.prefix)
}

// relation handles a Relation message: the first for a table, or one after
// DDL. A changed column set rebuilds the table's schemas, and the first
// event that uses them registers the new version.
func (s *Source) relation(ctx context.Context, m *pglogrepl.RelationMessage) error {
	t := s.byName[m.Namespace+"."+m.RelationName]
	if t == nil {
		return nil
	}
	s.byRel[m.RelationID] = t
	keys := map[string]bool{}
	for _, i := range t.keyCols {
		keys[t.cols[i].name] = true
	}
	dims := map[string]int{} // pgoutput does not say; the catalog did
	for _, c := range t.cols {
		dims[c.name] = c.dims
	}
	cols := make([]column, len(m.Columns))
	same := len(m.Columns) == len(t.cols)
	for i, mc := range m.Columns {
		c := mapType(mc.Name, mc.DataType, mc.TypeModifier, s.types, dims[mc.Name])
		c.key = keys[mc.Name]
		cols[i] = c
		if same && (t.cols[i].name != mc.Name || t.cols[i].oid != mc.DataType || t.cols[i].typmod != mc.TypeModifier) {
			same = false
		}
	}
	if same { // the first Relation message of a stream, most often
		return nil
	}
	clear(s.props) // DDL: a type may have changed too
	if err := s.loadProps(ctx, cols); err != nil {
		return err
	}
	nt := *t
	nt.cols, nt.keyCols, nt.relID = cols, nil, m.RelationID
	for i, c := range cols {
		if c.key {
			nt.keyCols = append(nt.keyCols, i)
		}
	}
	if err := nt.buildSchemas(s.cfg.prefix); err != nil {
		return err
	}
	*t = nt
	s.log.Info("table changed: new schema", "table", m.Namespace+"."+m.RelationName, "columns", len(cols))
	return nil
}

// tuple decodes a tuple. An unchanged TOASTed value, which the update
// did not carry, takes the value in prev when known (the old tuple of a
// REPLICA IDENTITY FULL table), else the placeholder; unavailable names
// the fields that hold a placeholder.
func (s *Source) tuple(t *table, td *pglogrepl.TupleData, prev map[string]any) (row map[string]any, unavailable []string, err error) {
	if td == nil {
		return nil, nil, nil
	}
	m := make(map[string]any, len(t.cols))
	for i, c := range t.cols {
		name := capture.AvroName(c.name)
		if i >= len(td.Columns) {
			m[name] = nil
			continue
		}
		col := td.Columns[i]
		switch col.DataType {
		case 'n':
			m[name] = nil
		case 'u':
			if v, ok := prev[name]; ok && v != nil {
				m[name] = v
				continue
			}
			m[name] = s.toastValue(c.schema)
			unavailable = append(unavailable, name)
		case 't':
			v, err := c.decode(string(col.Data))
			if err != nil {
				return nil, nil, fmt.Errorf("%s.%s.%s: %w", t.schema, t.name, c.name, err)
			}
			m[name] = v
			if labels, ok := c.props[connect.PropPGEnum].([]any); ok && !slices.Contains(labels, v) {
				t.stale = true // a label added since: no Relation message says so
			}
		default:
			return nil, nil, fmt.Errorf("%s.%s.%s: tuple data of kind %q", t.schema, t.name, c.name, col.DataType)
		}
	}
	return m, unavailable, nil
}

// toastValue stands for an unchanged TOASTed value: the placeholder for
// text and bytes, null for other types.
func (s *Source) toastValue(sc avro.Schema) any {
	switch sc.Type() {
	case avro.String:
		return s.cfg.toast
	case avro.Bytes:
		if _, decimal := sc.(*avro.PrimitiveSchema).Logical().(*avro.DecimalLogicalSchema); !decimal {
			return []byte(s.cfg.toast)
		}
	}
	return nil
}

// emit appends a change (and a tombstone after a delete) with the next
// positions of the transaction, unless the log already holds them;
// unavailable names the after-image's fields that hold no value
// (connect.HeaderUnavailable).
func (s *Source) emit(out []connect.Record, t *table, op string, before, after map[string]any, unavailable []string) ([]connect.Record, error) {
	now := time.Now()
	row := after
	if row == nil {
		row = before
	}
	value := map[string]any{"before": before, "after": after, "op": op, "ts_ms": now.UnixMilli(),
		"source": s.txnSource(t)}
	recs := []connect.Record{{Topic: t.topic, Key: t.key(row), KeySchema: t.keySchema, Value: value, ValueSchema: t.valueSchema, Timestamp: s.txn.commitTime}}
	if len(unavailable) > 0 {
		recs[0].Headers = []elog.Header{{Key: connect.HeaderUnavailable, Value: []byte(strings.Join(unavailable, ","))}}
	}
	if op == "d" && len(t.keyCols) > 0 {
		recs = append(recs, connect.Record{Topic: t.topic, Key: t.key(row), KeySchema: t.keySchema, Timestamp: s.txn.commitTime})
	}
	if op == "t" {
		recs[0].Broadcast = true // every partition's consumer must see it in order
	}
	return s.append(out, recs...), nil
}

// append appends records of the open transaction with its next
// positions, unless the log already holds them.
func (s *Source) append(out []connect.Record, recs ...connect.Record) []connect.Record {
	for _, r := range recs {
		r.Position = streamPos(s.txn.finalLSN, s.txn.seq)
		s.txn.seq++
		if s.resumeAfter != nil && bytes.Compare(r.Position, s.resumeAfter) <= 0 {
			continue
		}
		s.txn.emitted = true
		s.emitted = r.Position
		out = append(out, r)
	}
	return out
}
