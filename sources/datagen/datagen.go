// Package datagen is the datagen-source plugin: synthetic change events in
// Debezium's envelope, deterministic in their sequence number, so that a
// connector restarted from a stored position regenerates exactly the
// events after it. Quickstarts and the runtime's own tests run on it.
//
// Event i goes to table tables[i % T]; within a table, event j changes key
// j % keys in round j / keys: round 0 creates it, rounds ending in 9
// delete it (followed by a tombstone), the round after a delete creates it
// again, and the rest update it. Positions are the 8-byte big-endian event
// number followed by 0 for the event or 1 for its tombstone.
package datagen

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/eddy-cdc/eddy/connect"
)

// New builds the source from validated params.
func New(p connect.Params, env connect.Env) (connect.Source, error) {
	g := &Generator{
		name: env.Connector, prefix: p.String("topic_prefix"), tables: p.Strings("tables"),
		keys: p.Int("keys"), rate: p.Int("rate"), max: p.Int("max_events"), batch: int(p.Int("batch_size")),
		seed: p.Int("seed"), note: strings.Repeat("x", int(p.Int("payload_bytes"))),
	}
	if len(g.tables) == 0 {
		return nil, fmt.Errorf("tables: at least one table")
	}
	for _, t := range g.tables {
		s, err := newTableSchemas(g.prefix, t)
		if err != nil {
			return nil, fmt.Errorf("table %s: %w", t, err)
		}
		g.schemas = append(g.schemas, s)
	}
	return g, nil
}

// Generator produces the events; see the package doc.
type Generator struct {
	name, prefix string
	tables       []string
	keys, rate   int64
	max, seed    int64
	batch        int
	note         string
	schemas      []tableSchemas

	next     uint64 // the next event number
	started  time.Time
	sentRate uint64 // events emitted since started, for pacing
}

type tableSchemas struct {
	topic      string
	key, value avro.Schema
}

func newTableSchemas(prefix, table string) (tableSchemas, error) {
	ns := prefix + ".public." + table
	key, err := avro.ParseWithCache(fmt.Sprintf(`{"type":"record","name":"Key","namespace":%q,"fields":[{"name":"id","type":"long"}]}`, ns), "", &avro.SchemaCache{})
	if err != nil {
		return tableSchemas{}, err
	}
	value, err := avro.ParseWithCache(fmt.Sprintf(`{"type":"record","name":"Envelope","namespace":%q,"fields":[
		{"name":"before","type":["null",{"type":"record","name":"Value","fields":[
			{"name":"id","type":"long"},
			{"name":"customer","type":"string"},
			{"name":"amount","type":"double"},
			{"name":"status","type":["null","string"],"default":null},
			{"name":"note","type":"string"},
			{"name":"seq","type":"long","doc":"the event number that wrote this row state"},
			{"name":"updated_at","type":{"type":"long","logicalType":"timestamp-micros"}}]}],"default":null},
		{"name":"after","type":["null","Value"],"default":null},
		{"name":"source","type":{"type":"record","name":"Source","namespace":"io.eddy.datagen","fields":[
			{"name":"version","type":"string"},
			{"name":"connector","type":"string"},
			{"name":"name","type":"string"},
			{"name":"ts_ms","type":"long"},
			{"name":"snapshot","type":["null","string"],"default":null},
			{"name":"db","type":"string"},
			{"name":"schema","type":"string"},
			{"name":"table","type":"string"},
			{"name":"seq","type":"long"}]}},
		{"name":"op","type":"string"},
		{"name":"ts_ms","type":["null","long"],"default":null}]}`, ns), "", &avro.SchemaCache{})
	if err != nil {
		return tableSchemas{}, err
	}
	return tableSchemas{topic: ns, key: key, value: value}, nil
}

// Open continues after position.
func (g *Generator) Open(_ context.Context, position []byte) error {
	g.next = 0
	if len(position) >= 8 {
		g.next = binary.BigEndian.Uint64(position) + 1
	}
	g.started, g.sentRate = time.Now(), 0
	return nil
}

// Poll returns the next batch, paced to the configured rate.
func (g *Generator) Poll(ctx context.Context) ([]connect.Record, error) {
	n := uint64(g.batch)
	if g.max > 0 {
		if g.next >= uint64(g.max) {
			return nil, io.EOF
		}
		n = min(n, uint64(g.max)-g.next)
	}
	if g.rate > 0 {
		n = min(n, uint64(max(g.rate/20, 1))) // batches of at most 50ms of events
		due := g.started.Add(time.Duration(float64(g.sentRate) / float64(g.rate) * float64(time.Second)))
		if d := time.Until(due); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			case <-t.C:
			}
		}
	}
	out := make([]connect.Record, 0, n+n/8)
	now := time.Now()
	for range n {
		out = g.event(out, g.next, now)
		g.next++
	}
	g.sentRate += n
	return out, nil
}

// Commit has nothing to release: the events are regenerated from a
// position.
func (g *Generator) Commit(context.Context, []byte) error { return nil }

// Close is a no-op.
func (g *Generator) Close() error { return nil }

// Event returns the records of event i (one, or two for a delete), as a
// restart regenerates them; tests compare sinks' output with it.
func (g *Generator) Event(i uint64, now time.Time) []connect.Record { return g.event(nil, i, now) }

func (g *Generator) event(out []connect.Record, i uint64, now time.Time) []connect.Record {
	T := uint64(len(g.tables))
	ti, j := i%T, i/T
	key := int64(j % uint64(g.keys))
	round := j / uint64(g.keys)
	s := &g.schemas[ti]
	op := "u"
	switch {
	case round == 0 || round%10 == 0:
		op = "c"
	case round%10 == 9:
		op = "d"
	}
	row := func(r uint64) map[string]any {
		seq := i - (round-r)*uint64(g.keys)*T // the event that wrote round r of this key
		x := uint64(g.seed)*0x9E3779B97F4A7C15 ^ seq*0xBF58476D1CE4E5B9
		m := map[string]any{
			"id": key, "customer": fmt.Sprintf("customer-%d", x%1000), "amount": float64(x%100000) / 100,
			"note": g.note, "seq": int64(seq), "updated_at": time.UnixMicro(int64(1_700_000_000_000_000 + seq*1000)).UTC(),
		}
		if x%3 != 0 {
			m["status"] = []string{"new", "paid", "shipped"}[x%3]
		} else {
			m["status"] = nil
		}
		return m
	}
	var before, after any
	switch op {
	case "c":
		after = row(round)
	case "u":
		before, after = row(round-1), row(round)
	case "d":
		before = row(round - 1)
	}
	ts := now.UnixMilli()
	value := map[string]any{
		"before": before, "after": after, "op": op, "ts_ms": ts,
		"source": map[string]any{"version": "eddy", "connector": "datagen", "name": g.name, "ts_ms": ts,
			"snapshot": "false", "db": "datagen", "schema": "public", "table": g.tables[ti], "seq": int64(i)},
	}
	pos := make([]byte, 9)
	binary.BigEndian.PutUint64(pos, i)
	k := map[string]any{"id": key}
	out = append(out, connect.Record{Topic: s.topic, Key: k, KeySchema: s.key, Value: value, ValueSchema: s.value, Timestamp: now, Position: pos})
	if op == "d" {
		tpos := make([]byte, 9)
		binary.BigEndian.PutUint64(tpos, i)
		tpos[8] = 1
		out = append(out, connect.Record{Topic: s.topic, Key: k, KeySchema: s.key, Timestamp: now, Position: tpos})
	}
	return out
}
