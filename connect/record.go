package connect

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/eddy-cdc/eddy/internal/avrobin"
	elog "github.com/eddy-cdc/eddy/log"
)

// Record is a change event as the runtime carries it between a source, the
// transforms, the converter and a sink. Structured values are
// map[string]any (Avro records), []any (arrays) and Go scalars; a nullable
// field holds nil or its value, never a union wrapper. A source may give
// a record as an *avrobin.Ordered (its fields' values in schema order,
// cheaper to build and encode than a map); transforms and sinks see maps.
type Record struct {
	Topic       string
	Key         any         // nil when the record has no key
	Value       any         // nil is a tombstone
	KeySchema   avro.Schema // nil: the key is written without a schema (JSON or raw bytes)
	ValueSchema avro.Schema
	Headers     []elog.Header
	Timestamp   time.Time

	// Position is where the source read the record. Within one connector
	// positions increase in bytes.Compare order; the runtime stores the
	// last durable one and skips records at or before what the log holds.
	//
	// A record without a Topic is a position marker: nothing is appended,
	// but its position is stored with the batch (and committed to the
	// source), so a source whose captured tables are idle while its
	// upstream log moves on (a binlog) can say how far it has read. Its
	// Timestamp, when set, counts for the source's lag.
	Position []byte

	// Broadcast asks the runtime to append the record to every partition of
	// its topic: a truncate, which concerns the keys of all partitions,
	// must reach each partition's consumer in that partition's order.
	Broadcast bool

	// Partition and Offset are set on records read from the log.
	Partition int
	Offset    int64
}

// Field properties a change-capture source puts on the Avro fields of a
// row, so a sink can recreate the column as the source has it: Debezium's
// column.propagate.source.type (the first three: the type's name, its
// length or precision, its scale), and Eddy's exact ones for PostgreSQL
// (the type as format_type writes it; an enum's labels; a domain's base
// type and constraints, as CREATE DOMAIN takes them).
const (
	PropSourceType   = "__debezium.source.column.type"
	PropSourceLength = "__debezium.source.column.length"
	PropSourceScale  = "__debezium.source.column.scale"
	PropPGType       = "eddy.pg.type"
	PropPGEnum       = "eddy.pg.enum"
	PropPGDomain     = "eddy.pg.domain"
)

// Header returns the value of the last header named k, or nil.
func (r *Record) Header(k string) []byte { return headerOf(r.Headers, k) }

// Source is what a source plugin does. The runtime calls Open once, then
// Poll and Commit from one goroutine, then Close.
type Source interface {
	// Open starts reading after position; nil means from the beginning
	// (a snapshot, for change capture).
	Open(ctx context.Context, position []byte) error
	// Poll returns the next records, blocking until there are some or ctx
	// ends. io.EOF means the source has nothing more for now: a scheduled
	// connector stops until its next tick, others poll again later.
	Poll(ctx context.Context) ([]Record, error)
	// Commit tells the source that every record up to and including
	// position is durable in the log and the position stored; only now may
	// it release them upstream (acknowledge a replication slot, say).
	Commit(ctx context.Context, position []byte) error
	Close() error
}

// Resetter is a source with state upstream to release when its offsets
// are deleted (a replication slot, say); Reset is called on a fresh
// instance, not opened, while the connector is stopped.
type Resetter interface {
	Reset(ctx context.Context) error
}

// Holder is a source that holds state upstream on its connector's behalf
// which costs the upstream while nobody reads it (a replication slot
// retaining WAL). When the connector is deleted the runtime lists what it
// holds and releases it only when asked. Both are called on a fresh
// instance, not opened, with the connector's task stopped or not yet
// stopped (Held only).
type Holder interface {
	Held(ctx context.Context) ([]Retained, error)
	Release(ctx context.Context) error
}

// LagReporter is a source that can say how far behind its upstream it is,
// in the upstream's own unit (bytes of WAL or binlog). The runtime asks
// after each batch and while idle, from the task's goroutine.
type LagReporter interface {
	LagBytes() (int64, bool)
}

// Sink is what a sink plugin does. Write is called from one goroutine.
type Sink interface {
	Open(ctx context.Context) error
	// Write delivers records durably and returns nil only then. A
	// *RecordError says records before Index were delivered and the one at
	// Index cannot be (retrying will not help); any other error is retried.
	Write(ctx context.Context, recs []Record) error
	Close() error
}

// RawValueSink is a sink that can read record keys and values in Avro
// binary. When RawValues says yes and the connector has no transforms,
// the runtime hands it each Avro key and value as an *AvroValue (JSON and
// raw bytes are decoded as usual), so a sink that needs a few fields, or
// can write the bytes on as they are, is spared building the value model
// for every record.
type RawValueSink interface {
	RawValues() bool
}

// BatchingSink is a sink that wants fuller batches than the log happens
// to hold: when a fetch has read everything there is and brings fewer than
// records records (0: any number), the task waits up to linger for more
// and fetches again before it writes. Fewer, larger writes under a
// trickle, for that much latency.
type BatchingSink interface {
	Batching() (records int, linger time.Duration)
}

// FetchSizer is a sink that wants the log read in fetches of another size
// than the runtime's own (16 MiB for a RawValueSink, 4 MiB for others),
// such as one that holds much in memory of its own and would rather the
// fetches, which the task reads ahead two at a time, took less.
type FetchSizer interface {
	FetchBytes() int
}

// AvroValue is a record key or value left in Avro binary for a
// RawValueSink. Body, the bytes without the wire header, aliases the
// fetched log data: it is valid only until Write returns.
type AvroValue struct {
	Schema avro.Schema
	ID     int // in the schema registry
	Body   []byte
	codec  *avrobin.Codec
}

// NewAvroValue wraps the Avro binary body of a value written with schema
// (registry id id), as the runtime hands it to a RawValueSink.
func NewAvroValue(schema avro.Schema, id int, body []byte) (*AvroValue, error) {
	k, err := avrobin.Compile(schema)
	if err != nil {
		return nil, err
	}
	return &AvroValue{Schema: schema, ID: id, Body: body, codec: k}, nil
}

// Decode returns the value in the runtime's model, as a sink that does
// not read Avro itself would have been given it.
func (v *AvroValue) Decode() (any, error) {
	out, err := v.codec.Decode(avrobin.NewReader(v.Body))
	if err != nil {
		return nil, fmt.Errorf("decode with schema %d: %w", v.ID, err)
	}
	return out, nil
}

// BufferingSink is a sink that stores records at points of its own
// choosing (an object store's files, rolled where the records decide)
// rather than at the end of each Write: its Write returns nil once it has
// taken the records, held or stored. Holding is the first offset of the
// partition's records it holds unstored (ok false when it holds none), and
// the runtime commits the group's offsets no further. After each join the runtime calls Assign
// with the partitions the task now reads and the offset each resumes
// from: the sink drops whatever it holds and starts afresh there, since
// what it held unstored comes again. A Write the runtime retries may bring
// records the sink has taken already; it takes each offset once.
type BufferingSink interface {
	Assign(from map[elog.TopicPartition]int64)
	Holding(tp elog.TopicPartition) (first int64, ok bool)
}

// OffsetStore is a sink that keeps its offsets with its data, atomically.
// On start the runtime resumes from what it says rather than from the
// group's committed offsets (which it still commits, for lag).
type OffsetStore interface {
	// Offsets returns the next offset to deliver per topic-partition that
	// the sink has seen; partitions it has not seen are absent.
	Offsets(ctx context.Context) (map[elog.TopicPartition]int64, error)
}

// RecordError is a record that cannot be handled: bad data, a constraint
// it breaks. It is not retried; errors.tolerance decides its fate.
type RecordError struct {
	Index int // in the slice passed to Write
	Err   error
}

func (e *RecordError) Error() string { return fmt.Sprintf("record %d: %v", e.Index, e.Err) }
func (e *RecordError) Unwrap() error { return e.Err }

// Env is what the runtime gives a plugin besides its params.
type Env struct {
	Connector string
	Logger    *slog.Logger
	// Peers lists the connectors configured on this worker as it is
	// asked (nil: none known), so a source can tell state upstream that
	// no configured connector uses (a replication slot left by a removed
	// connector).
	Peers func() []Peer
	// History opens the connector's history topic (history.go); nil
	// where the runtime keeps none (a source must then do without, or
	// say it cannot).
	History func() (History, error)
}

// Peer is a connector configured on the worker.
type Peer struct {
	Name, Plugin string
	Params       Params
}

// RetentionReporter is a source whose upstream retains data for readers
// (replication slots holding WAL, say); the runtime publishes what it
// reports as eddy_source_retained_bytes, after each batch and while idle,
// from the task's goroutine.
type RetentionReporter interface {
	Retained() []Retained
}

// Retained is what one upstream reader (a slot) keeps: Orphaned when no
// configured connector reads it.
type Retained struct {
	Name     string
	Bytes    int64
	Orphaned bool
}

// Plugins are the implementations behind the catalog's sources, sinks and
// transforms, by plugin name; the runtime's own transforms (route,
// filter, ...) and jobs need none. A transform's constructor is called
// for each task, which uses it from one goroutine.
type Plugins struct {
	Sources    map[string]func(Params, Env) (Source, error)
	Sinks      map[string]func(Params, Env) (Sink, error)
	Transforms map[string]func(Params, Env) (Transform, error)
	Jobs       map[string]func(Params, JobEnv) (Job, error)
}

// Job is what a job plugin does on each tick of its schedule. Run is
// never called again before it returns (a tick that comes while it runs
// is skipped); ctx ends when the worker closes. A job that is also a
// prometheus.Collector has its series served with the worker's.
type Job interface {
	Run(ctx context.Context) error
}

// JobEnv is what a job plugin is given.
type JobEnv struct {
	Job    string
	Logger *slog.Logger
	// Peers lists the connectors configured on the worker as it is asked.
	Peers func() []Peer
	// SourcePosition is a source connector's stored position: the place
	// in its upstream up to which everything it captured is durable in
	// the log (ok false before its first commit).
	SourcePosition func(connector string) (position []byte, ok bool)
}

// Check reports catalog entries without an implementation and the reverse.
func (p Plugins) Check(c *Catalog) error {
	var errs []error
	for _, name := range c.Names(KindSource) {
		if p.Sources[name] == nil {
			errs = append(errs, fmt.Errorf("source %s is in the catalog but has no implementation", name))
		}
	}
	for _, name := range c.Names(KindSink) {
		if p.Sinks[name] == nil {
			errs = append(errs, fmt.Errorf("sink %s is in the catalog but has no implementation", name))
		}
	}
	for _, name := range c.Names(KindTransform) {
		if _, own := builtinTransform(name); !own && p.Transforms[name] == nil {
			errs = append(errs, fmt.Errorf("transform %s is in the catalog but has no implementation", name))
		}
	}
	for name := range p.Transforms {
		if pl := c.Plugin(name); pl == nil || pl.Kind != KindTransform {
			errs = append(errs, fmt.Errorf("transform %s is implemented but not in the catalog", name))
		}
	}
	for _, name := range c.Names(KindJob) {
		if !builtinJob(name) && p.Jobs[name] == nil {
			errs = append(errs, fmt.Errorf("job %s is in the catalog but has no implementation", name))
		}
	}
	for name := range p.Jobs {
		if pl := c.Plugin(name); pl == nil || pl.Kind != KindJob || builtinJob(name) {
			errs = append(errs, fmt.Errorf("job %s is implemented but not in the catalog", name))
		}
	}
	for name := range p.Sources {
		if pl := c.Plugin(name); pl == nil || pl.Kind != KindSource {
			errs = append(errs, fmt.Errorf("source %s is implemented but not in the catalog", name))
		}
	}
	for name := range p.Sinks {
		if pl := c.Plugin(name); pl == nil || pl.Kind != KindSink {
			errs = append(errs, fmt.Errorf("sink %s is implemented but not in the catalog", name))
		}
	}
	return errors.Join(errs...)
}
