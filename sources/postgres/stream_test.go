package postgres

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"math/big"
	"reflect"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/jackc/pglogrepl"

	"github.com/eddy-cdc/eddy/connect"
)

// Hand-built pgoutput (protocol 1) messages, as the server sends them in
// XLogData, so the stream handling is tested without a server.

type wal []byte

func (w wal) u8(b byte) wal    { return append(w, b) }
func (w wal) i16(v int) wal    { return binary.BigEndian.AppendUint16(w, uint16(v)) }
func (w wal) i32(v uint32) wal { return binary.BigEndian.AppendUint32(w, v) }
func (w wal) i64(v uint64) wal { return binary.BigEndian.AppendUint64(w, v) }
func (w wal) str(s string) wal { return append(append(w, s...), 0) }
func (w wal) pgTime(t time.Time) wal {
	return w.i64(uint64(t.Sub(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).Microseconds()))
}

type tcol struct {
	kind byte // 'n' null, 'u' unchanged TOAST, 't' text
	text string
}

func (w wal) tuple(cols ...tcol) wal {
	w = w.i16(len(cols))
	for _, c := range cols {
		w = w.u8(c.kind)
		if c.kind == 't' {
			w = w.i32(uint32(len(c.text)))
			w = append(w, c.text...)
		}
	}
	return w
}

func txt(s string) tcol { return tcol{'t', s} }

var (
	null      = tcol{kind: 'n'}
	unchanged = tcol{kind: 'u'}
)

const relOrders = 16400

func relationMsg() wal {
	w := wal{'R'}.i32(relOrders).str("public").str("orders").u8('d').i16(3)
	w = w.u8(1).str("id").i32(oidInt8).i32(0xffffffff)
	w = w.u8(0).str("note").i32(25).i32(0xffffffff)
	return w.u8(0).str("price").i32(oidNumeric).i32((10<<16 | 2) + 4)
}

func beginMsg(final pglogrepl.LSN, at time.Time, xid uint32) wal {
	return wal{'B'}.i64(uint64(final)).pgTime(at).i32(xid)
}

func commitMsg(lsn, end pglogrepl.LSN, at time.Time) wal {
	return wal{'C'}.u8(0).i64(uint64(lsn)).i64(uint64(end)).pgTime(at)
}

func insertMsg(cols ...tcol) wal { return wal{'I'}.i32(relOrders).u8('N').tuple(cols...) }

func updateMsg(oldKind byte, old []tcol, cols ...tcol) wal {
	w := wal{'U'}.i32(relOrders)
	if oldKind != 0 {
		w = w.u8(oldKind).tuple(old...)
	}
	return w.u8('N').tuple(cols...)
}

func deleteMsg(kind byte, cols ...tcol) wal { return wal{'D'}.i32(relOrders).u8(kind).tuple(cols...) }

func truncateMsg(rels ...uint32) wal {
	w := wal{'T'}.i32(uint32(len(rels))).u8(0)
	for _, r := range rels {
		w = w.i32(r)
	}
	return w
}

// streamSource is a Source that has described public.orders (id int8 key,
// note text, price numeric(10,2)), as describe leaves it, with no server.
func streamSource(t testing.TB) *Source {
	t.Helper()
	s := &Source{cfg: config{prefix: "shop", toast: "__unavailable"}, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		db: "shop", byName: map[string]*table{}, byRel: map[uint32]*table{}, types: map[uint32]typeInfo{}}
	tb := &table{schema: "public", name: "orders"}
	for _, c := range []struct {
		name   string
		oid    uint32
		typmod int32
	}{{"id", oidInt8, -1}, {"note", 25, -1}, {"price", oidNumeric, (10<<16 | 2) + 4}} {
		tb.cols = append(tb.cols, mapColumn(c.name, c.oid, c.typmod))
	}
	tb.cols[0].key, tb.keyCols = true, []int{0}
	if err := tb.buildSchemas("shop"); err != nil {
		t.Fatal(err)
	}
	s.byName["public.orders"], s.order = tb, []*table{tb}
	return s
}

func feed(t *testing.T, s *Source, msgs ...wal) []connect.Record {
	t.Helper()
	var out []connect.Record
	for i, m := range msgs {
		var err error
		if out, err = s.handle(context.Background(), pglogrepl.XLogData{WALData: m}, out); err != nil {
			t.Fatalf("message %d (%c): %v", i, m[0], err)
		}
	}
	return out
}

func dec(s string) any {
	r, _ := new(big.Rat).SetString(s)
	return r
}

// One transaction of every kind of change: each record's topic, op, key,
// images, headers and position, the tombstone after a delete, a key
// change as delete + create, truncate broadcast, and the watermark the
// commit leaves for the slot.
func TestPgoutputTransaction(t *testing.T) {
	s := streamSource(t)
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	const final, end = pglogrepl.LSN(0x1000), pglogrepl.LSN(0x1080)
	out := feed(t, s,
		relationMsg(),
		beginMsg(final, at, 777),
		insertMsg(txt("1"), txt("first"), txt("12.50")),
		updateMsg(0, nil, txt("1"), unchanged, txt("13.00")),
		updateMsg('K', []tcol{txt("1"), null, null}, txt("2"), txt("x"), null),
		deleteMsg('K', txt("2"), null, null),
		truncateMsg(relOrders, 99999),
		commitMsg(final, end, at),
	)
	type want struct {
		op          string
		key         any
		before      map[string]any
		after       map[string]any
		unavailable string
		tombstone   bool
	}
	k := func(id int64) any { return map[string]any{"id": id} }
	wants := []want{
		{op: "c", key: k(1), after: map[string]any{"id": int64(1), "note": "first", "price": dec("12.50")}},
		{op: "u", key: k(1), after: map[string]any{"id": int64(1), "note": "__unavailable", "price": dec("13.00")}, unavailable: "note"},
		{op: "d", key: k(1), before: map[string]any{"id": int64(1), "note": nil, "price": nil}},
		{tombstone: true, key: k(1)},
		{op: "c", key: k(2), after: map[string]any{"id": int64(2), "note": "x", "price": nil}},
		{op: "d", key: k(2), before: map[string]any{"id": int64(2), "note": nil, "price": nil}},
		{tombstone: true, key: k(2)},
		{op: "t", key: nil},
	}
	if len(out) != len(wants) {
		t.Fatalf("%d records, want %d: %+v", len(out), len(wants), out)
	}
	for i, w := range wants {
		r := out[i]
		if r.Topic != "shop.public.orders" || !reflect.DeepEqual(r.Key, w.key) {
			t.Errorf("record %d: topic %s key %v, want key %v", i, r.Topic, r.Key, w.key)
		}
		if !reflect.DeepEqual(r.Position, streamPos(final, uint64(i))) {
			t.Errorf("record %d: position %x, want %x", i, r.Position, streamPos(final, uint64(i)))
		}
		if !r.Timestamp.Equal(at) {
			t.Errorf("record %d: timestamp %s, want the commit time", i, r.Timestamp)
		}
		if w.tombstone {
			if r.Value != nil {
				t.Errorf("record %d: a tombstone with a value", i)
			}
			continue
		}
		v := r.Value.(map[string]any)
		if v["op"] != w.op {
			t.Errorf("record %d: op %v, want %s", i, v["op"], w.op)
		}
		for _, img := range []struct {
			name string
			want map[string]any
		}{{"before", w.before}, {"after", w.after}} {
			got, _ := v[img.name].(map[string]any)
			if !ratEqual(got, img.want) {
				t.Errorf("record %d: %s %v, want %v", i, img.name, got, img.want)
			}
		}
		src := v["source"].(map[string]any)
		if src["txId"] != int64(777) || src["lsn"] != int64(final) || src["table"] != "orders" || src["snapshot"] != "false" {
			t.Errorf("record %d: source %v", i, src)
		}
		if got := string(r.Header(connect.HeaderUnavailable)); got != w.unavailable {
			t.Errorf("record %d: unavailable %q, want %q", i, got, w.unavailable)
		}
		if w.op == "t" && !r.Broadcast {
			t.Errorf("record %d: a truncate not broadcast", i)
		}
	}
	// The commit left a watermark: once the last record is committed, the
	// slot may move to the transaction's end.
	if len(s.completed) != 1 || s.completed[0].end != end || !reflect.DeepEqual(s.completed[0].last, out[len(out)-1].Position) {
		t.Fatalf("watermarks %+v", s.completed)
	}
	s.release(out[3].Position)
	if s.confirmed != 0 {
		t.Fatalf("confirmed %s before the transaction's last record was committed", s.confirmed)
	}
	s.release(out[len(out)-1].Position)
	if s.confirmed != end {
		t.Fatalf("confirmed %s, want %s", s.confirmed, end)
	}
}

func ratEqual(a, b map[string]any) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok {
			return false
		}
		if r, isRat := v.(*big.Rat); isRat {
			wr, ok := w.(*big.Rat)
			if !ok || r.Cmp(wr) != 0 {
				return false
			}
			continue
		}
		if !reflect.DeepEqual(v, w) {
			return false
		}
	}
	return true
}

// REPLICA IDENTITY FULL: an update's old image fills the TOASTed value the
// new one did not carry; an uncaptured relation is ignored; a restart that
// resumes after a position skips what the log already holds; an empty
// transaction leaves a watermark the slot moves to at once.
func TestPgoutputFullIdentityResumeAndEmpty(t *testing.T) {
	s := streamSource(t)
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	out := feed(t, s, relationMsg(), beginMsg(0x2000, at, 9),
		updateMsg('O', []tcol{txt("5"), txt("long text"), txt("1.00")}, txt("5"), unchanged, txt("2.00")),
		wal{'I'}.i32(424242).u8('N').tuple(txt("1")), // another relation: not captured
		commitMsg(0x2000, 0x2040, at))
	if len(out) != 1 {
		t.Fatalf("%d records", len(out))
	}
	after := out[0].Value.(map[string]any)["after"].(map[string]any)
	if after["note"] != "long text" || out[0].Header(connect.HeaderUnavailable) != nil {
		t.Fatalf("full identity: after %v, header %q", after, out[0].Header(connect.HeaderUnavailable))
	}

	s = streamSource(t)
	s.resumeAfter = streamPos(0x3000, 1)
	out = feed(t, s, relationMsg(), beginMsg(0x3000, at, 10),
		insertMsg(txt("1"), null, null), insertMsg(txt("2"), null, null), insertMsg(txt("3"), null, null),
		commitMsg(0x3000, 0x3040, at))
	if len(out) != 1 || !reflect.DeepEqual(out[0].Key, map[string]any{"id": int64(3)}) {
		t.Fatalf("resumed after seq 1: %d records, first key %v", len(out), out[0].Key)
	}

	s = streamSource(t)
	s.emitted, s.committed = streamPos(0x100, 0), streamPos(0x100, 0)
	feed(t, s, beginMsg(0x4000, at, 11), commitMsg(0x4000, 0x4040, at))
	if s.confirmed != 0x4040 {
		t.Fatalf("an empty transaction with nothing in flight: confirmed %s, want 0/4040", s.confirmed)
	}
}

// A value the column's type cannot hold, or tuple data of an unknown
// kind, is an error naming the column, not a panic or a silent null.
func TestPgoutputBadTuples(t *testing.T) {
	at := time.Now()
	for _, m := range []wal{
		insertMsg(txt("not a number"), null, null),
		insertMsg(txt("99999999999999999999"), null, null), // past int8
		wal{'I'}.i32(relOrders).u8('N').i16(1).u8('x'),
	} {
		s := streamSource(t)
		var err error
		for _, msg := range []wal{relationMsg(), beginMsg(0x10, at, 1), m} {
			if _, err = s.handle(context.Background(), pglogrepl.XLogData{WALData: msg}, nil); err != nil {
				break
			}
		}
		if err == nil {
			t.Errorf("%x: no error", m)
		}
	}
}

func keepaliveMsg(end pglogrepl.LSN, reply bool) []byte {
	w := wal{pglogrepl.PrimaryKeepaliveMessageByteID}.i64(uint64(end)).pgTime(time.Now())
	if reply {
		return w.u8(1)
	}
	return w.u8(0)
}

func xlogData(start pglogrepl.LSN, m wal) []byte {
	return append(wal{pglogrepl.XLogDataByteID}.i64(uint64(start)).i64(uint64(start)).pgTime(time.Now()), m...)
}

// Keepalives: with nothing in flight and no transaction open, the slot may
// move to the server's WAL end at once (a server shutting down waits for
// that); inside a transaction it may not; a reply asked for is sent at the
// next turn. XLogData goes through the same door as the stream reads it.
func TestPgoutputKeepalive(t *testing.T) {
	ctx := context.Background()
	s := streamSource(t)
	s.nextStatus = time.Now().Add(time.Hour)
	if _, err := s.copyData(ctx, keepaliveMsg(0x5000, false), nil); err != nil {
		t.Fatal(err)
	}
	if s.confirmed != 0x5000 || !s.nextStatus.IsZero() {
		t.Fatalf("idle keepalive: confirmed %s, next status %s", s.confirmed, s.nextStatus)
	}
	at := time.Now()
	out, err := s.copyData(ctx, xlogData(0x5100, relationMsg()), nil)
	if err == nil {
		out, err = s.copyData(ctx, xlogData(0x5100, beginMsg(0x5200, at, 5)), out)
	}
	if err == nil {
		out, err = s.copyData(ctx, xlogData(0x5100, insertMsg(txt("1"), null, null)), out)
	}
	if err != nil || len(out) != 1 {
		t.Fatalf("XLogData: %d records, %v", len(out), err)
	}
	s.nextStatus = time.Now().Add(time.Hour)
	if _, err := s.copyData(ctx, keepaliveMsg(0x6000, false), out); err != nil {
		t.Fatal(err)
	}
	if s.confirmed != 0x5000 || s.nextStatus.IsZero() {
		t.Fatalf("keepalive inside a transaction moved the slot to %s", s.confirmed)
	}
	if _, err := s.copyData(ctx, keepaliveMsg(0x6000, true), out); err != nil || !s.nextStatus.IsZero() {
		t.Fatalf("a reply asked for is not due: %v", err)
	}
	if _, err := s.copyData(ctx, []byte{pglogrepl.PrimaryKeepaliveMessageByteID, 1, 2}, nil); err == nil {
		t.Fatal("a short keepalive is no error")
	}
}

// Any bytes as a WAL message: an error or records, never a panic.
func FuzzPgoutput(f *testing.F) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	for _, m := range []wal{relationMsg(), beginMsg(0x10, at, 1), insertMsg(txt("1"), txt("a"), txt("1.5")),
		updateMsg('K', []tcol{txt("1"), null, null}, txt("2"), unchanged, null), deleteMsg('O', txt("1"), txt("a"), null),
		truncateMsg(relOrders), commitMsg(0x10, 0x20, at)} {
		f.Add([]byte(m))
		f.Add(xlogData(0x10, m))
	}
	f.Add(keepaliveMsg(0x20, true))
	f.Fuzz(func(t *testing.T, b []byte) {
		s := streamSource(t)
		for _, m := range []wal{relationMsg(), beginMsg(0x10, at, 1)} {
			if _, err := s.handle(context.Background(), pglogrepl.XLogData{WALData: m}, nil); err != nil {
				t.Fatal(err)
			}
		}
		s.handle(context.Background(), pglogrepl.XLogData{WALData: b}, nil)
		s.copyData(context.Background(), b, nil) // as a whole CopyData message too
	})
}

func messageMsg(transactional bool, lsn pglogrepl.LSN, prefix, content string) wal {
	flag := byte(0)
	if transactional {
		flag = 1
	}
	return append(wal{'M'}.u8(flag).i64(uint64(lsn)).str(prefix).i32(uint32(len(content))), content...)
}

// Transactional messages of the prefixes asked for become message events
// in their transaction's order, encodable with their schemas; others, and
// non-transactional ones, are not captured.
func TestPgoutputMessages(t *testing.T) {
	s := streamSource(t)
	var err error
	if s.msgs, err = newMessageStream("shop", []string{"outbox"}); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	recs := feed(t, s, relationMsg(),
		messageMsg(false, 0x100, "outbox", `{"early":true}`),
		beginMsg(0x2000, at, 77),
		insertMsg(txt("1"), txt("a"), txt("1.00")),
		messageMsg(true, 0x1100, "outbox", `{"id":"e1"}`),
		messageMsg(true, 0x1200, "other", `{"id":"x"}`),
		messageMsg(true, 0x1300, "outbox", ``),
		commitMsg(0x1400, 0x2000, at))
	if len(recs) != 3 {
		t.Fatalf("%d records, want an insert and two messages: %+v", len(recs), recs)
	}
	for i, want := range []string{`{"id":"e1"}`, ``} {
		r := recs[i+1]
		v := r.Value.(map[string]any)
		msg := v["message"].(map[string]any)
		if r.Topic != "shop.message" || v["op"] != "m" || msg["prefix"] != "outbox" || string(msg["content"].([]byte)) != want {
			t.Errorf("message %d: %s %+v", i, r.Topic, v)
		}
		if src := v["source"].(map[string]any); src["txId"] != int64(77) || src["lsn"] != int64(0x2000) {
			t.Errorf("message %d: source %+v", i, src)
		}
		if _, err := avro.Marshal(r.ValueSchema, r.Value); err != nil {
			t.Errorf("message %d: value does not fit its schema: %v", i, err)
		}
		if _, err := avro.Marshal(r.KeySchema, r.Key); err != nil {
			t.Errorf("message %d: key does not fit its schema: %v", i, err)
		}
		if string(r.Position) <= string(recs[i].Position) {
			t.Errorf("message %d: position %x not after %x", i, r.Position, recs[i].Position)
		}
	}
	if s.msgs.skipped != 1 {
		t.Errorf("%d non-transactional messages skipped, want 1", s.msgs.skipped)
	}
}
