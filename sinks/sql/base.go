package sql

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/eddy-cdc/eddy/connect"
	"github.com/eddy-cdc/eddy/internal/avrobin"
	elog "github.com/eddy-cdc/eddy/log"
)

// writeMode is the mode param: how a change is written.
type writeMode string

const (
	modeUpsert writeMode = "upsert" // INSERT ... ON CONFLICT / ON DUPLICATE KEY UPDATE
	modeInsert writeMode = "insert" // a duplicate key fails the record
)

// keyMode is the primary_key param: where a target table's key comes from.
type keyMode string

const (
	keyFromRecord keyMode = "record_key" // the record's key fields
	keyFromFields keyMode = "fields"     // primary_key_fields
	keyNone       keyMode = "none"       // no key: append only
)

// recordKind is what a record's value is, and the accepts param: which
// kinds the sink takes ("any", the default, takes both).
type recordKind string

const (
	kindAny       recordKind = "any"
	kindEnvelope  recordKind = "envelope"  // a Debezium change envelope
	kindFlattened recordKind = "flattened" // a row (after unwrap)
)

// sinkBase is what both database sinks share: their params, and the state
// of turning records into changes (table names, truncates applied,
// envelope readers).
type sinkBase struct {
	connector  string
	template   string
	mode       writeMode
	pkMode     keyMode
	pkFields   []string
	deletes    bool
	autoCreate bool
	autoEvolve bool
	accepts    recordKind
	batchSize  int           // records a transaction holds at most; 0: all of a Write
	flush      time.Duration // how long the task may wait to fill a batch
	log        *slog.Logger
	names      map[tableKey]string // rendered table names
	// truncated is, per target table, the source position of the last
	// truncate applied (stored in eddy_truncates with it). A truncate is
	// in every partition of its topic; the first copy applies it, and the
	// records of other partitions from before it (by source position) are
	// superseded and skipped, so no partition brings back a row it wiped.
	truncated map[string][]byte
	envelopes map[avro.Schema]*avrobin.Envelope // nil: not an envelope the raw path reads
	sets      [2]changeSet                      // reused (changesFrom)
	committed map[elog.TopicPartition]int64     // the next offset per partition, as eddy_offsets holds it
	idents    map[avro.Schema]*keyIdent         // nil: a key decoded
	lastRaw   lastRawName
	rd        avrobin.Reader // scans envelopes
	// recordFault says whether a failed write is a record's fault
	// (faults.go): only those are isolated and dead-lettered.
	recordFault func(error) bool
}

func newBase(p connect.Params, env connect.Env, recordFault func(error) bool) sinkBase {
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return sinkBase{connector: env.Connector, template: p.String("table"), mode: writeMode(p.String("mode")), pkMode: keyMode(p.String("primary_key")),
		pkFields: p.Strings("primary_key_fields"), deletes: p.Bool("delete"), autoCreate: p.Bool("auto_create"), autoEvolve: p.Bool("auto_evolve"), log: log,
		accepts: recordKind(p.String("accepts")), batchSize: int(p.Int("batch_size")), flush: p.Duration("flush_interval"),
		recordFault: recordFault, names: map[tableKey]string{}, idents: map[avro.Schema]*keyIdent{}, truncated: map[string][]byte{}, envelopes: map[avro.Schema]*avrobin.Envelope{}}
}

// maxFlushInterval bounds flush_interval: the task waits that long
// between heartbeats of its consumer group.
const maxFlushInterval = 10 * time.Second

// check validates the params newBase took that the catalog cannot.
func (s *sinkBase) check(p connect.Params) error {
	if s.pkMode == keyFromFields && len(s.pkFields) == 0 {
		return fmt.Errorf("line %d: primary_key: fields needs primary_key_fields", p.Line("primary_key"))
	}
	if s.flush > maxFlushInterval {
		return fmt.Errorf("line %d: flush_interval: %s is more than %s", p.Line("flush_interval"), s.flush, maxFlushInterval)
	}
	return nil
}

// Batching tells the runtime how full a batch the sink wants and how long
// it may wait to fill one (connect.BatchingSink).
func (s *sinkBase) Batching() (int, time.Duration) { return s.batchSize, s.flush }

// noteCommitted records the offsets a transaction stored (or that
// eddy_offsets holds on start).
func (s *sinkBase) noteCommitted(offsets map[elog.TopicPartition]int64) {
	if s.committed == nil {
		s.committed = map[elog.TopicPartition]int64{}
	}
	for tp, next := range offsets {
		s.committed[tp] = max(s.committed[tp], next)
	}
}

// inBatches calls write on recs batch_size records at a time, each in its
// own transaction with its offsets; a RecordError's index is recs'. Records
// a transaction of this sink already stored are passed over: when a write
// fails after some of its batches (or halves) committed, the runtime sends
// all of it again, and applying those again would not be exactly once (an
// insert would meet its own row).
func (s *sinkBase) inBatches(recs []connect.Record, write func([]connect.Record) error) error {
	start := 0
	for start < len(recs) {
		r := &recs[start]
		if next, ok := s.committed[elog.TopicPartition{Topic: r.Topic, Partition: r.Partition}]; !ok || r.Offset >= next {
			break
		}
		start++
	}
	n := s.batchSize
	if n <= 0 {
		n = len(recs)
	}
	for ; start < len(recs); start += n {
		if err := write(recs[start:min(start+n, len(recs))]); err != nil {
			var re *connect.RecordError
			if errors.As(err, &re) {
				return &connect.RecordError{Index: start + re.Index, Err: re.Err}
			}
			return err
		}
	}
	return nil
}

// targetTable is what a sink knows of a target table: its columns and key,
// and, for postgres-sink, how its straight COPY of created rows fares and
// which schemas it fits.
type targetTable struct {
	cols map[string]string // name -> type
	pk   []string
	// freshSkip is how many more batches skip the straight COPY of
	// created rows after one met a row already there; freshBackoff is
	// the next such pause, doubled each time, up to 64 batches.
	freshSkip, freshBackoff int
	fits                    map[*avro.RecordSchema]bool // schemas whose every field has a column
}

// knownTable records in tables what the target says of c's table: its
// columns (none when it does not exist yet), and the key it gets if the
// sink creates it.
func (s *sinkBase) knownTable(tables map[string]*targetTable, c change, cols map[string]string) (*targetTable, error) {
	pk, err := s.keyColumns(c)
	if err != nil {
		return nil, err
	}
	t := &targetTable{cols: cols, pk: pk, fits: map[*avro.RecordSchema]bool{}}
	tables[c.table] = t
	return t, nil
}

// isolate applies recs in one transaction. When that fails for a
// record's sake, it halves them, committing each part that applies, until
// the record at fault stands alone; that one comes back as a RecordError
// with its index, everything before it delivered. A poison record in a
// batch of n costs about 2·log2(n) transactions, not n. Only a record's
// fault is isolated (s.recordFault; faults.go): when the target is at
// fault, or gone says the connection failed, the error is returned as is,
// and the runtime retries the batch.
func (s *sinkBase) isolate(recs []connect.Record, base int, top bool, apply func([]change, map[elog.TopicPartition]int64) error, gone func() bool) error {
	changes, err := s.changes(recs)
	if err == nil {
		err = apply(changes, offsetsOf(recs))
	}
	if err == nil || gone() || targetFault(err, s.recordFault) || connect.IsPermanent(err) {
		return err
	}
	if len(recs) == 1 {
		return &connect.RecordError{Index: base, Err: err}
	}
	if top {
		s.log.Warn("batch failed; applying it in halves to find the record at fault", "records", len(recs), "err", err)
	}
	mid := len(recs) / 2
	if err := s.isolate(recs[:mid], base, false, apply, gone); err != nil {
		return err
	}
	return s.isolate(recs[mid:], base+mid, false, apply, gone)
}

// keepTruncates records the truncates a committed transaction applied.
// Their positions are copied: a change's position aliases the fetched log
// data, which the next fetch overwrites, and a truncate's must outlive it
// (it decides which records of other partitions it superseded).
func (s *sinkBase) keepTruncates(applied map[string][]byte) {
	for table, pos := range applied {
		s.truncated[table] = bytes.Clone(pos)
	}
}

// changes turns records into the last change of each key, in order of
// first appearance.
func (s *sinkBase) changes(recs []connect.Record) ([]change, error) {
	out, _, err := s.changesFrom(&s.sets[0], recs, s.truncated)
	return out, err
}

// changeSet holds a batch's changes and the index of their keys, kept for
// the next batch so a steady stream allocates neither anew. A sink has two:
// postgres-sink builds a part's changes in one while it applies the other.
type changeSet struct {
	out []change
	at  map[string]int
}

// changesFrom is changes with the truncates applied so far given
// (truncated), into set; it also returns the truncates as they stand once
// these changes apply.
func (s *sinkBase) changesFrom(set *changeSet, recs []connect.Record, truncatedBefore map[string][]byte) ([]change, map[string][]byte, error) {
	out := slices.Grow(set.out[:0], len(recs))
	if set.at == nil {
		set.at = make(map[string]int, len(recs))
	}
	at := set.at
	clear(at)
	var kb []byte                                              // the key of the change in hand; looked up without allocating
	truncated := make(map[string][]byte, len(truncatedBefore)) // as it will be once this batch applies
	for k, v := range truncatedBefore {
		truncated[k] = v
	}
	for i := range recs {
		c, ok, err := s.toChange(&recs[i], i)
		if err != nil {
			return nil, nil, err
		}
		if !ok {
			continue
		}
		if tp := truncated[c.table]; tp != nil && c.pos != nil && bytes.Compare(c.pos, tp) <= 0 {
			continue // from before a truncate already applied: superseded
		}
		if c.truncate {
			// Everything of the table before it goes; the truncate leads.
			kept := out[:0]
			for _, o := range out {
				if o.table != c.table {
					kept = append(kept, o)
				}
			}
			out = append([]change{c}, kept...)
			clear(at)
			for j := range out {
				if !out[j].truncate {
					if kb, err = s.appendChangeKey(kb[:0], &out[j]); err != nil {
						return nil, nil, err
					}
					at[string(kb)] = j
				}
			}
			truncated[c.table] = c.pos
			continue
		}
		if kb, err = s.appendChangeKey(kb[:0], &c); err != nil {
			return nil, nil, err
		}
		if j, seen := at[string(kb)]; seen {
			if len(c.unavailable) > 0 && out[j].upsert() {
				if err := fillUnavailable(&c, &out[j]); err != nil {
					return nil, nil, err
				}
			}
			out[j] = c
			continue
		}
		at[string(kb)] = len(out)
		out = append(out, c)
	}
	set.out = out
	return out, truncated, nil
}

// appendChangeKey identifies a change's table and key values, for
// collapsing changes per key; a keyless change stands alone (by its index).
// A raw key is read with its keyIdent, which writes what this writes for
// the decoded key.
func (s *sinkBase) appendChangeKey(dst []byte, c *change) ([]byte, error) {
	if c.rawKey != nil {
		return c.ident.append(&s.rd, append(append(dst, c.table...), 0), c.rawKey.Body)
	}
	return appendChangeKey(dst, c), nil
}

func appendChangeKey(dst []byte, c *change) []byte {
	dst = append(append(dst, c.table...), 0)
	if c.key == nil {
		return strconv.AppendInt(append(dst, '#'), int64(c.index), 10)
	}
	if len(c.key) == 1 { // the common case: no sort
		for n, v := range c.key {
			return appendKeyValue(append(append(dst, n...), '='), v)
		}
	}
	for _, n := range sortedNames(c.key) {
		dst = appendKeyValue(append(append(dst, n...), '='), c.key[n])
		dst = append(dst, 0)
	}
	return dst
}

func appendKeyValue(dst []byte, v any) []byte {
	switch x := v.(type) {
	case int:
		return strconv.AppendInt(dst, int64(x), 10)
	case int64:
		return strconv.AppendInt(dst, x, 10)
	case string:
		return append(dst, x...)
	}
	return fmt.Append(dst, v)
}

func offsetsOf(recs []connect.Record) map[elog.TopicPartition]int64 {
	out := map[elog.TopicPartition]int64{}
	for _, r := range recs {
		tp := elog.TopicPartition{Topic: r.Topic, Partition: r.Partition}
		out[tp] = max(out[tp], r.Offset+1)
	}
	return out
}

func sortedNames(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for n := range m {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// keyColumns are a new target table's primary-key columns: the record
// key's fields, sorted, or primary_key_fields.
func (s *sinkBase) keyColumns(c change) ([]string, error) {
	if s.pkMode == keyFromFields {
		return s.pkFields, nil
	}
	key, err := c.keyMap()
	if err != nil {
		return nil, err
	}
	var pk []string
	for k := range key {
		pk = append(pk, k)
	}
	sort.Strings(pk)
	return pk, nil
}

// mayCreate says whether a missing table may be created for c.
func (s *sinkBase) mayCreate(c change) error {
	if !s.autoCreate || c.schema == nil {
		return fmt.Errorf("table %s does not exist (set auto_create: true to create it)", c.table)
	}
	return nil
}

// partialColumns are the columns a change that lacks some updates: those
// it carries, key aside, sorted.
func partialColumns(c *change, key map[string]any) []string {
	var cols []string
	for _, col := range sortedNames(c.row) {
		if _, isKey := key[col]; !isKey && !slices.Contains(c.unavailable, col) {
			cols = append(cols, col)
		}
	}
	return cols
}

// quoteAll quotes each identifier.
func quoteAll(names []string, quote func(string) string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = quote(n)
	}
	return out
}
