package mysql

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/eddy-cdc/eddy/connect"
)

// The schema history: each tracked table's definition from a position on
// (its drop, or nothing, when it has none), kept in the connector's
// history topic (connect.History), keyed by table and position. It is
// written at each snapshot (every table of the tracked databases, from
// information_schema), at each DDL statement (parsed: ddl.go) and where a
// table map with full metadata shows columns the history did not have;
// on restart the definitions as of the stored position are read back.
// Where the server writes no column metadata in the binlog
// (binlog_row_metadata below FULL) rows are decoded with these
// definitions, checked against the table map's column types. An entry
// is deleted (compaction then removes it) once a newer one of its table
// is at or before the connector's stored position.

type histEntry struct {
	DB      string       `json:"db"`
	Table   string       `json:"table"`
	Pos     string       `json:"pos"` // hex
	DDL     string       `json:"ddl,omitempty"`
	Dropped bool         `json:"dropped,omitempty"`
	Charset string       `json:"charset,omitempty"`
	Columns []histColumn `json:"columns,omitempty"`
	Key     []string     `json:"key,omitempty"`
}

type histColumn struct {
	Name     string   `json:"name"`
	Type     string   `json:"type"`
	Unsigned bool     `json:"unsigned,omitempty"`
	Prec     int      `json:"precision,omitempty"`
	Scale    int      `json:"scale,omitempty"`
	Bits     int      `json:"bits,omitempty"`
	Length   int      `json:"length,omitempty"`
	Charset  string   `json:"charset,omitempty"`
	Labels   []string `json:"labels,omitempty"`
	Nullable bool     `json:"nullable,omitempty"`
}

var kindByName = func() map[string]kind {
	m := map[string]kind{}
	for k, n := range kindNames {
		m[n] = k
	}
	return m
}()

func histKey(db, table string, pos []byte) []byte {
	b, _ := json.Marshal([]string{db, table, hex.EncodeToString(pos)})
	return b
}

func entryOf(full string, d *tableDef, pos []byte, ddl string) histEntry {
	if d == nil {
		db, name, _ := strings.Cut(full, ".")
		return histEntry{DB: db, Table: name, Pos: hex.EncodeToString(pos), DDL: ddl, Dropped: true}
	}
	e := histEntry{DB: d.db, Table: d.name, Pos: hex.EncodeToString(pos), DDL: ddl, Charset: d.charset, Key: d.key}
	for _, c := range d.cols {
		e.Columns = append(e.Columns, histColumn{Name: c.name, Type: kindNames[c.kind], Unsigned: c.unsigned, Prec: c.prec, Scale: c.scale,
			Bits: c.bits, Length: c.length, Charset: c.charset, Labels: c.labels, Nullable: c.nullable})
	}
	return e
}

func (e histEntry) def() (*tableDef, error) {
	d := &tableDef{db: e.DB, name: e.Table, charset: e.Charset, key: e.Key}
	for _, hc := range e.Columns {
		k, ok := kindByName[hc.Type]
		if !ok {
			return nil, fmt.Errorf("%s.%s.%s: unknown type %q", e.DB, e.Table, hc.Name, hc.Type)
		}
		d.cols = append(d.cols, column{name: hc.Name, kind: k, unsigned: hc.Unsigned, prec: hc.Prec, scale: hc.Scale, bits: hc.Bits,
			length: hc.Length, charset: hc.Charset, labels: hc.Labels, nullable: hc.Nullable})
	}
	return d, nil
}

// histRef is an entry of the history as pruning needs it.
type histRef struct {
	pos     []byte
	key     []byte
	dropped bool
}

// schemaHistory is the history in the connector's history topic.
type schemaHistory struct {
	store connect.History
	mu    sync.Mutex
	refs  map[string][]histRef // by table, in position order
}

// load reads the history back and returns the definitions as of upTo
// (nil: none, a fresh start) and whether it holds any entry at or
// before upTo.
func (h *schemaHistory) load(ctx context.Context, upTo []byte) (map[string]*tableDef, bool, error) {
	latest := map[string][]byte{}
	var order []string
	err := h.store.Read(ctx, func(k, v []byte) error {
		if _, ok := latest[string(k)]; !ok {
			order = append(order, string(k))
		}
		latest[string(k)] = v
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("read the schema history: %w", err)
	}
	type found struct {
		pos []byte
		e   histEntry
	}
	byTable := map[string][]found{}
	for _, k := range order {
		v := latest[k]
		if v == nil {
			continue
		}
		var e histEntry
		if err := json.Unmarshal(v, &e); err != nil {
			return nil, false, fmt.Errorf("read the schema history: entry %s: %w", k, err)
		}
		pos, err := hex.DecodeString(e.Pos)
		if err != nil {
			return nil, false, fmt.Errorf("read the schema history: entry %s: position: %w", k, err)
		}
		full := e.DB + "." + e.Table
		byTable[full] = append(byTable[full], found{pos, e})
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.refs = map[string][]histRef{}
	defs := map[string]*tableDef{}
	any := false
	for full, fs := range byTable {
		slices.SortFunc(fs, func(a, b found) int { return bytes.Compare(a.pos, b.pos) })
		var at *found
		for i := range fs {
			h.refs[full] = append(h.refs[full], histRef{pos: fs[i].pos, key: histKey(fs[i].e.DB, fs[i].e.Table, fs[i].pos), dropped: fs[i].e.Dropped})
			if upTo != nil && bytes.Compare(fs[i].pos, upTo) <= 0 {
				at = &fs[i]
			}
		}
		if at == nil {
			continue
		}
		any = true
		if at.e.Dropped {
			continue
		}
		d, err := at.e.def()
		if err != nil {
			return nil, false, fmt.Errorf("read the schema history: %w", err)
		}
		defs[full] = d
	}
	return defs, any, nil
}

// reset deletes every entry: a fresh start, whose positions may repeat
// those of an earlier life of the connector.
func (h *schemaHistory) reset(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	var recs []connect.HistoryRecord
	for _, refs := range h.refs {
		for _, r := range refs {
			recs = append(recs, connect.HistoryRecord{Key: r.key})
		}
	}
	if err := h.store.Put(ctx, recs); err != nil {
		return fmt.Errorf("reset the schema history: %w", err)
	}
	h.refs = map[string][]histRef{}
	return nil
}

// put stores the definitions (from defs; a table absent there is
// dropped) of tables at pos, durably.
func (h *schemaHistory) put(ctx context.Context, pos []byte, ddl string, defs map[string]*tableDef, tables []string) error {
	if len(tables) == 0 {
		return nil
	}
	pos = slices.Clone(pos)
	recs := make([]connect.HistoryRecord, 0, len(tables))
	type added struct {
		full string
		ref  histRef
	}
	refs := make([]added, 0, len(tables))
	for _, full := range slices.Compact(slices.Sorted(slices.Values(tables))) {
		e := entryOf(full, defs[full], pos, ddl)
		v, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("schema history of %s: %w", full, err)
		}
		key := histKey(e.DB, e.Table, pos)
		recs = append(recs, connect.HistoryRecord{Key: key, Value: v})
		refs = append(refs, added{full, histRef{pos: pos, key: key, dropped: e.Dropped}})
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.store.Put(ctx, recs); err != nil {
		return fmt.Errorf("store the schema history: %w", err)
	}
	for _, a := range refs {
		list := slices.DeleteFunc(h.refs[a.full], func(o histRef) bool { return bytes.Equal(o.key, a.ref.key) })
		i, _ := slices.BinarySearchFunc(list, a.ref.pos, func(o histRef, p []byte) int { return bytes.Compare(o.pos, p) })
		h.refs[a.full] = slices.Insert(list, i, a.ref)
	}
	return nil
}

// prune deletes the entries no restart can need: those older than the
// newest entry of their table at or before the stored position, and a
// drop that is its table's last entry once it is stored.
func (h *schemaHistory) prune(ctx context.Context, stored []byte) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	var recs []connect.HistoryRecord
	keep := map[string][]histRef{}
	for full, refs := range h.refs {
		k := -1
		for i, r := range refs {
			if bytes.Compare(r.pos, stored) <= 0 {
				k = i
			}
		}
		if k > 0 || (k == 0 && refs[0].dropped && len(refs) == 1) {
			cut := k
			if refs[k].dropped && k == len(refs)-1 {
				cut = k + 1
			}
			for _, r := range refs[:cut] {
				recs = append(recs, connect.HistoryRecord{Key: r.key})
			}
			keep[full] = refs[cut:]
		}
	}
	if len(recs) == 0 {
		return nil
	}
	if err := h.store.Put(ctx, recs); err != nil {
		return fmt.Errorf("prune the schema history: %w", err)
	}
	for full, refs := range keep {
		if len(refs) == 0 {
			delete(h.refs, full)
		} else {
			h.refs[full] = refs
		}
	}
	return nil
}

// tracks says whether the history keeps a database's tables: those of
// every database a table pattern could match.
func (s *Source) tracks(db string) bool {
	switch strings.ToLower(db) {
	case "mysql", "information_schema", "performance_schema", "sys":
		return false
	}
	for _, p := range s.cfg.tables {
		dbPattern, _, _ := strings.Cut(p, ".")
		if ok, _ := path.Match(dbPattern, db); ok {
			return true
		}
	}
	return false
}

// openHistory reads the schema history back as of position (nil: a
// fresh start, which forgets an earlier life's history).
func (s *Source) openHistory(ctx context.Context, position []byte) error {
	s.defs = map[string]*tableDef{}
	if s.histFn == nil {
		return nil
	}
	store, err := s.histFn()
	if err != nil {
		return err
	}
	s.hist = &schemaHistory{store: store, refs: map[string][]histRef{}}
	defs, found, err := s.hist.load(ctx, position)
	if err != nil {
		return err
	}
	if position == nil {
		return s.hist.reset(ctx)
	}
	s.defs = defs
	if !found && !s.fullMeta {
		if p, err := parsePosition(position); err == nil && p.kind == posSnapshot && !p.done {
			return nil // the snapshot is taken again, and its history with it
		}
		return fmt.Errorf("%w: the binlog carries no column metadata (binlog_row_metadata is not FULL) and the connector's schema history (topic %s%s) holds no definitions as of its stored position: "+
			"set binlog_row_metadata = FULL, or delete the connector's offsets to take a new snapshot", ErrPreflight, connect.HistoryTopicPrefix, s.name)
	}
	return nil
}

// baseline stores the definitions of every tracked table as
// information_schema has them now, as of stream coordinates at.
func (s *Source) baseline(ctx context.Context, at coords) error {
	num, err := fileNumber(at.file)
	if err != nil {
		return err
	}
	return s.baselineAt(ctx, streamPos(s.gen, num, 0, at))
}

func (s *Source) baselineAt(ctx context.Context, pos []byte) error {
	if s.hist == nil {
		return nil
	}
	var dbs []any
	for db := range s.ddl.dbs {
		if s.tracks(db) {
			dbs = append(dbs, db)
		}
	}
	defs := map[string]*tableDef{}
	if len(dbs) > 0 {
		var err error
		if defs, err = s.describeDefs("c.table_schema in (?"+strings.Repeat(", ?", len(dbs)-1)+")", dbs...); err != nil {
			return err
		}
	}
	s.defs = defs
	return s.hist.put(ctx, pos, "", defs, slices.Collect(maps.Keys(defs)))
}

// historyDDL applies a DDL statement of the binlog at pos to the
// definitions and stores those it changed. Without column metadata in
// the binlog a statement the parser refuses, about a tracked table,
// stops the connector: its rows could not be decoded.
func (s *Source) historyDDL(ctx context.Context, pos []byte, schema, query string) error {
	if s.hist == nil {
		return nil
	}
	changed, err := applyDDL(s.ddl, s.defs, schema, query, s.tracks)
	if err != nil {
		if !s.fullMeta {
			return connect.Permanent(fmt.Errorf("%w: %v; the statement: %s. The binlog carries no column metadata (binlog_row_metadata is not FULL), so the rows after it cannot be decoded: "+
				"set binlog_row_metadata = FULL and delete the connector's offsets to take a new snapshot", ErrPreflight, err, query))
		}
		s.log.Warn("the schema history could not follow a DDL statement; the binlog's table maps carry the columns, so capture goes on", "err", err, "ddl", query)
		for _, full := range changed {
			delete(s.defs, full) // unknown from here: stored as gone
		}
	}
	return s.hist.put(ctx, pos, query, s.defs, changed)
}

// fitsMap checks a definition against a table map: as many columns, each
// of a binlog type its kind is written as (and the same precision,
// scale, bits and length where the map says them).
func fitsMap(d *tableDef, e *replication.TableMapEvent) error {
	if len(d.cols) != int(e.ColumnCount) {
		return fmt.Errorf("%s has %d columns in the schema history but %d in the binlog", d.full(), len(d.cols), e.ColumnCount)
	}
	for i, c := range d.cols {
		typ, meta := e.ColumnType[i], e.ColumnMeta[i]
		real := typ
		if typ == mysql.MYSQL_TYPE_STRING {
			real = byte(meta >> 8)
		}
		ok := false
		switch c.kind {
		case kTiny:
			ok = typ == mysql.MYSQL_TYPE_TINY
		case kSmall:
			ok = typ == mysql.MYSQL_TYPE_SHORT
		case kMedium:
			ok = typ == mysql.MYSQL_TYPE_INT24
		case kInt:
			ok = typ == mysql.MYSQL_TYPE_LONG
		case kBig:
			ok = typ == mysql.MYSQL_TYPE_LONGLONG
		case kDecimal:
			ok = typ == mysql.MYSQL_TYPE_NEWDECIMAL && int(meta>>8) == c.prec && int(meta&0xff) == c.scale
		case kFloat:
			ok = typ == mysql.MYSQL_TYPE_FLOAT
		case kDouble:
			ok = typ == mysql.MYSQL_TYPE_DOUBLE
		case kBit:
			ok = typ == mysql.MYSQL_TYPE_BIT && int(meta>>8)*8+int(meta&0xff) == c.bits
		case kYear:
			ok = typ == mysql.MYSQL_TYPE_YEAR
		case kDate:
			ok = typ == mysql.MYSQL_TYPE_DATE || typ == mysql.MYSQL_TYPE_NEWDATE
		case kTime:
			ok = typ == mysql.MYSQL_TYPE_TIME || typ == mysql.MYSQL_TYPE_TIME2
		case kDatetime:
			ok = typ == mysql.MYSQL_TYPE_DATETIME || typ == mysql.MYSQL_TYPE_DATETIME2
		case kTimestamp:
			ok = typ == mysql.MYSQL_TYPE_TIMESTAMP || typ == mysql.MYSQL_TYPE_TIMESTAMP2
		case kText, kBytes:
			switch typ {
			case mysql.MYSQL_TYPE_VARCHAR, mysql.MYSQL_TYPE_VAR_STRING, mysql.MYSQL_TYPE_BLOB, mysql.MYSQL_TYPE_TINY_BLOB, mysql.MYSQL_TYPE_MEDIUM_BLOB, mysql.MYSQL_TYPE_LONG_BLOB:
				ok = true
			case mysql.MYSQL_TYPE_STRING:
				ok = real == mysql.MYSQL_TYPE_STRING
			}
		case kBinary:
			ok = typ == mysql.MYSQL_TYPE_STRING && real == mysql.MYSQL_TYPE_STRING && stringLength(meta) == c.length
		case kEnum:
			ok = typ == mysql.MYSQL_TYPE_STRING && real == mysql.MYSQL_TYPE_ENUM
		case kSet:
			ok = typ == mysql.MYSQL_TYPE_STRING && real == mysql.MYSQL_TYPE_SET
		case kJSON:
			ok = typ == mysql.MYSQL_TYPE_JSON
		case kGeometry:
			ok = typ == mysql.MYSQL_TYPE_GEOMETRY
		}
		if !ok {
			return fmt.Errorf("%s.%s is %s in the schema history but of binlog type %d", d.full(), c.name, kindNames[c.kind], typ)
		}
	}
	return nil
}
