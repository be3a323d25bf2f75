package mysql

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/google/uuid"

	"github.com/eddy-cdc/eddy/connect"
	"github.com/eddy-cdc/eddy/internal/avrobin"
	"github.com/eddy-cdc/eddy/internal/capture"
)

// maxLinger bounds how long a batch waits for more records: the latency a
// change may gain before its append starts.
const maxLinger = 10 * time.Millisecond

// idleReturn is how long an idle poll waits before it returns nothing,
// so the runtime's loop around it (lag) goes on.
const idleReturn = time.Second

// stream is the binlog being read.
type stream struct {
	syncer  *replication.BinlogSyncer
	events  *replication.BinlogStreamer
	file    string
	fileNum uint32
	gtids   gtidSet // executed before the next transaction
	// resumeAfter: records at or before it are in the log already.
	resumeAfter []byte
	byID        map[uint64]*table // a table map's id: its captured table, nil when not captured
	txn         txn
	// passed is where the last whole transaction ended (or a rotate
	// led): a position marker there is greater than every record read.
	passed     coords
	handed     []byte    // the last position handed out
	eventTime  time.Time // the newest event's timestamp
	caughtUp   bool      // a heartbeat came: the server has nothing more
	nextMarker time.Time
	slab       []byte // positions are carved from it
	flat       slabs  // rows, keys and source blocks are carved from these
	envelopes  slabs  // and the envelopes that point to them from these
	nowMs      any    // the events' ts_ms, for the rows event being read
	// mapsAt is where the table maps outside any transaction began
	// (mapsPending): rows that follow them with no BEGIN start there.
	mapsAt      uint64
	mapsPending bool

	// The binlog is read and decoded on a goroutine of its own (decode),
	// a batch ahead of the runtime's appends: batches carries its batches
	// and at last its error. Only that goroutine touches the fields
	// above once it runs.
	batches chan batch
	ctx     context.Context // the goroutine's
	stop    context.CancelFunc
	stopped chan struct{}
	start   coords // where it started
}

// batch is what the decoding goroutine hands Poll: records, or the
// error it stopped on.
type batch struct {
	recs []connect.Record
	err  error
}

// close stops the decoding goroutine, then the binlog connection.
func (st *stream) close() {
	if st.stop != nil {
		st.stop()
		<-st.stopped
		st.stop = nil
	}
	if st.syncer != nil {
		st.syncer.Close()
		st.syncer = nil
	}
}

// decode reads and decodes the binlog into batches until ctx ends or an
// error stops it.
func (s *Source) decode(ctx context.Context, st *stream) {
	defer close(st.stopped)
	for {
		recs, err := s.readBatch(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil && len(recs) == 0 {
			continue
		}
		select {
		case st.batches <- batch{recs: recs, err: err}:
		case <-ctx.Done():
			return
		}
		if err != nil {
			return
		}
	}
}

// pollStream hands out the next decoded batch, or nothing after a second
// without one.
func (s *Source) pollStream(ctx context.Context) ([]connect.Record, error) {
	st := s.stream
	idle := time.NewTimer(idleReturn)
	defer idle.Stop()
	select {
	case b, ok := <-st.batches:
		if !ok {
			return nil, errors.New("the binlog reader stopped")
		}
		if b.err != nil {
			close(st.batches) // the reader has stopped; later polls say so
		}
		return b.recs, b.err
	case <-idle.C:
		return nil, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// txn is the transaction being read.
type txn struct {
	open    bool
	start   coords // where it begins, with the GTIDs before it
	gtid    string // its own GTID
	seq     uint64 // rows handed out so far (positions start at 1)
	ts      time.Time
	thread  int64
	sources map[*table][]any // source blocks' values (txnSource)
	encoded []byte           // start, encoded for positions
}

// startStream starts reading the binlog at at; records at or before
// resumeAfter are dropped as already logged.
func (s *Source) startStream(_ context.Context, at coords, resumeAfter []byte) error {
	num, err := fileNumber(at.file)
	if err != nil {
		return err
	}
	gtids, err := parseGTIDs(s.cfg.flavor, at.gtid)
	if err != nil {
		return err
	}
	host, portText, err := net.SplitHostPort(s.cfg.addr)
	if err != nil {
		return fmt.Errorf("dsn: address %s: %w", s.cfg.addr, err)
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil {
		return fmt.Errorf("dsn: port %s: %w", portText, err)
	}
	syncer := replication.NewBinlogSyncer(replication.BinlogSyncerConfig{
		ServerID: s.cfg.serverID, Flavor: s.cfg.flavor, Host: host, Port: uint16(port), User: s.cfg.user, Password: s.cfg.password,
		Localhost: s.replicaHost(), TimestampStringLocation: time.UTC, ParseTime: true, HeartbeatPeriod: time.Second, ReadTimeout: 30 * time.Second,
		DisableRetrySync: true, VerifyChecksum: true, EventCacheCount: 256,
		// ParseTime: DATETIME and TIMESTAMP as time.Time (DATETIME in
		// UTC), zero dates still as text; DATE and TIME stay text.
		// go-mysql logs its whole configuration, password included, at
		// INFO: its logger is silenced, and its errors come back to us.
		Logger: slog.New(slog.DiscardHandler),
	})
	events, err := syncer.StartSync(mysql.Position{Name: at.file, Pos: uint32(at.pos)})
	if err != nil {
		syncer.Close()
		return s.syncError(fmt.Errorf("start reading the binlog at %s: %w", at, err))
	}
	st := &stream{syncer: syncer, events: events, file: at.file, fileNum: num, gtids: gtids, resumeAfter: resumeAfter,
		byID: map[uint64]*table{}, handed: resumeAfter, nextMarker: time.Now().Add(s.cfg.heartbeat),
		batches: make(chan batch, 2), stopped: make(chan struct{}), start: at}
	st.passed = at
	s.stream = st
	ctx, cancel := context.WithCancel(context.Background())
	st.ctx, st.stop = ctx, cancel
	go s.decode(ctx, st)
	s.log.Info("streaming", "binlog", at.String(), "server_id", s.cfg.serverID)
	return nil
}

// syncError makes the server's refusals that retrying will not cure
// permanent, saying what to do.
func (s *Source) syncError(err error) error {
	msg := err.Error()
	switch {
	case errCode(err) == erAccessDenied || strings.Contains(msg, "REPLICATION SLAVE"):
		return connect.Permanent(fmt.Errorf("%w: user %s may not read the binlog (%v): GRANT REPLICATION SLAVE ON *.* TO %s", ErrPreflight, s.cfg.user, err, s.cfg.user))
	case strings.Contains(msg, "same server_uuid") || strings.Contains(msg, "same server_id") || strings.Contains(msg, "same server id"):
		return connect.Permanent(fmt.Errorf("%w: server_id %d is in use by another replica (%v): give this connector a server_id of its own", ErrPreflight, s.cfg.serverID, err))
	case strings.Contains(msg, "Could not find first log file") || strings.Contains(msg, "purged") || strings.Contains(msg, "not find GTID"):
		return connect.Permanent(fmt.Errorf("%w: the server no longer has the binlog this connector needs (%v): set snapshot: when_needed to take a new snapshot, or accept_binlog_gap: true", ErrPreflight, err))
	}
	return err
}

// readBatch reads binlog events until it has a batch, or some records
// and a short pause, or a second passed without any.
func (s *Source) readBatch(ctx context.Context) ([]connect.Record, error) {
	st := s.stream
	// A rows event's changes all go in, past batch: room for one
	// event's more, most of the time, and not a copy of the batch.
	out := make([]connect.Record, 0, s.cfg.batch+s.cfg.batch/2+2)
	started := time.Now()
	var first time.Time
	var rd capture.Deadline
	defer rd.Stop()
	for len(out) < s.cfg.batch {
		if len(out) > 0 {
			if first.IsZero() {
				first = time.Now()
			} else if time.Since(first) >= maxLinger {
				return out, nil
			}
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if len(out) == 0 && time.Since(started) >= idleReturn {
			// Only other tables' changes (or none) for a while: back to
			// the runtime's loop, with a marker when one is due.
			return s.marker(out), nil
		}
		deadline := started.Add(idleReturn)
		if len(out) > 0 {
			deadline = first.Add(maxLinger)
		}
		ev, err := st.events.GetEvent(rd.Get(ctx, deadline))
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
				if len(out) == 0 {
					out = s.marker(out)
				}
				return out, nil
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, s.syncError(fmt.Errorf("read the binlog at %s:%d: %w", st.file, st.passed.pos, err))
		}
		if out, err = s.handle(ev, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// marker is a position marker at the end of the last whole transaction,
// at most every heartbeat_interval, when the stream has read past what
// was handed out: the stored position then follows the binlog while the
// captured tables are idle, and the lag reads from it.
func (s *Source) marker(out []connect.Record) []connect.Record {
	st := s.stream
	if s.cfg.heartbeat <= 0 || time.Now().Before(st.nextMarker) {
		return out
	}
	st.nextMarker = time.Now().Add(s.cfg.heartbeat)
	num, err := fileNumber(st.passed.file)
	if err != nil {
		return out
	}
	pos := streamPos(s.gen, num, 0, st.passed)
	if st.handed != nil && bytes.Compare(pos, st.handed) <= 0 {
		return out
	}
	ts := st.eventTime
	if st.caughtUp || ts.IsZero() {
		ts = time.Now()
	}
	st.handed = pos
	return append(out, connect.Record{Position: pos, Timestamp: ts})
}

// handle turns one binlog event into records.
func (s *Source) handle(ev *replication.BinlogEvent, out []connect.Record) ([]connect.Record, error) {
	st := s.stream
	h := ev.Header
	st.nowMs = nil
	if h.Timestamp != 0 && h.EventType != replication.HEARTBEAT_EVENT {
		st.eventTime = time.Unix(int64(h.Timestamp), 0)
		st.caughtUp = false
	}
	begin := uint64(h.LogPos) - uint64(h.EventSize) // where this event starts
	switch e := ev.Event.(type) {
	case *replication.RotateEvent:
		name := string(e.NextLogName)
		num, err := fileNumber(name)
		if err != nil {
			return out, err
		}
		st.file, st.fileNum = name, num
		if !st.txn.open {
			st.passed = coords{file: name, pos: e.Position, gtid: st.gtids.String()}
		}
	case *replication.MariadbGTIDEvent:
		s.beginTxn(begin, e.GTID.String(), 0)
	case *replication.GTIDEvent:
		gtid := ""
		if u, err := uuid.FromBytes(e.SID); err == nil {
			gtid = fmt.Sprintf("%s:%d", u, e.GNO)
		}
		s.beginTxn(begin, gtid, 0)
	case *replication.QueryEvent:
		return s.queryEvent(ev, e, begin, out)
	case *replication.TableMapEvent:
		if !st.txn.open && !st.mapsPending {
			st.mapsAt, st.mapsPending = begin, true
		}
		return out, s.tableMap(e)
	case *replication.RowsEvent:
		return s.rows(ev, e, out)
	case *replication.XIDEvent:
		return out, s.endTxn(uint64(h.LogPos))
	case *replication.TransactionPayloadEvent: // MySQL's binlog_transaction_compression
		var err error
		for _, inner := range e.Events {
			if out, err = s.handle(inner, out); err != nil {
				return out, err
			}
		}
	case *replication.GenericEvent:
		if h.EventType == replication.HEARTBEAT_EVENT || h.EventType == replication.HEARTBEAT_LOG_EVENT_V2 {
			st.caughtUp = true
		}
	}
	return out, nil
}

func (s *Source) beginTxn(begin uint64, gtid string, thread int64) {
	st := s.stream
	st.mapsPending = false
	st.txn = txn{open: true, start: coords{file: st.file, pos: begin, gtid: st.gtids.String()}, gtid: gtid, ts: st.eventTime, thread: thread}
}

// endTxn closes the transaction that ended at end.
func (s *Source) endTxn(end uint64) error {
	st := s.stream
	if st.txn.gtid != "" {
		if err := st.gtids.add(st.txn.gtid); err != nil {
			return err
		}
	}
	st.txn = txn{}
	st.passed = coords{file: st.file, pos: end, gtid: st.gtids.String()}
	return nil
}

// savepointRE matches the statements a transaction logs as queries
// between its rows: SAVEPOINT, ROLLBACK TO, RELEASE SAVEPOINT.
var savepointRE = regexp.MustCompile(`(?i)^\s*(savepoint|rollback\s+(work\s+)?to|release\s+savepoint)\b`)

// truncateRE matches TRUNCATE [TABLE] name.
var truncateRE = regexp.MustCompile("(?is)^\\s*truncate\\s+(?:table\\s+)?((?:`[^`]+`|[^\\s.`;]+)(?:\\s*\\.\\s*(?:`[^`]+`|[^\\s.`;]+))?)")

func isTruncate(q string) bool { return truncateRE.MatchString(q) }

// queryEvent handles a query event: BEGIN and COMMIT bound a transaction; a
// TRUNCATE of a captured table is an event; other DDL needs nothing, as
// the next table map carries the table's new columns.
func (s *Source) queryEvent(ev *replication.BinlogEvent, e *replication.QueryEvent, begin uint64, out []connect.Record) ([]connect.Record, error) {
	st := s.stream
	q := strings.TrimSpace(string(e.Query))
	switch strings.ToUpper(q) {
	case "BEGIN":
		if !st.txn.open {
			s.beginTxn(begin, "", int64(e.SlaveProxyID))
		} else {
			st.txn.thread = int64(e.SlaveProxyID)
		}
		return out, nil
	case "COMMIT":
		return out, s.endTxn(uint64(ev.Header.LogPos))
	}
	if st.txn.open && savepointRE.MatchString(q) {
		return out, nil // inside the transaction, which goes on
	}
	if !st.txn.open {
		s.beginTxn(begin, "", int64(e.SlaveProxyID))
	}
	if m := truncateRE.FindStringSubmatch(q); m != nil {
		db, name := string(e.Schema), m[1]
		if a, b, ok := splitQualified(name); ok {
			db, name = a, b
		} else {
			name = unquote(name)
		}
		if t := s.byName[db+"."+name]; t != nil {
			out = s.emit(out, t, "t", nil, nil)
		}
	}
	if !isTruncate(q) {
		// The history's position for it: after a position marker where
		// the statement begins, before anything after it.
		if err := s.historyDDL(st.ctx, streamPos(s.gen, st.fileNum, 1, st.txn.start), string(e.Schema), q); err != nil {
			return out, err
		}
	}
	// DDL commits by itself: the statement is its own transaction. A
	// table it changed gets a new table id, so forget the old ones.
	clear(st.byID)
	return out, s.endTxn(uint64(ev.Header.LogPos))
}

func unquote(s string) string {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && s[0] == '`' && s[len(s)-1] == '`' {
		return strings.ReplaceAll(s[1:len(s)-1], "``", "`")
	}
	return s
}

// splitQualified splits db.name (either part quoted).
func splitQualified(s string) (string, string, bool) {
	in := false
	for i, r := range s {
		switch {
		case r == '`':
			in = !in
		case r == '.' && !in:
			return unquote(s[:i]), unquote(s[i+1:]), true
		}
	}
	return "", "", false
}

// tableMap handles a table map: the table an id stands for, with its
// columns as the binlog has them. A changed column set rebuilds the
// table's schemas, and the first event that uses them registers the new
// version.
func (s *Source) tableMap(e *replication.TableMapEvent) error {
	st := s.stream
	full := string(e.Schema) + "." + string(e.Table)
	t := s.byName[full]
	if t == nil {
		if !s.captures(full) {
			st.byID[e.TableID] = nil
			return nil
		}
		// A table created (or renamed into the patterns) since the start.
		t = &table{db: string(e.Schema), name: string(e.Table), index: len(s.order)}
		s.order = append(s.order, t)
		s.byName[full] = t
		s.log.Info("capturing a new table", "table", full)
	}
	if st.byID[e.TableID] == t && t.cols != nil {
		return nil // a table id stands for one definition: DDL gives a new one
	}
	if !s.fullMeta {
		return s.historyTableMap(e, t)
	}
	cols, err := s.binlogColumns(e)
	if err != nil {
		return err
	}
	var keyOrder []int
	for _, k := range e.PrimaryKey {
		keyOrder = append(keyOrder, int(k))
	}
	if len(keyOrder) == 0 {
		if s.cfg.noKey != "all_columns" {
			return connect.Permanent(fmt.Errorf("%w: table %s has no primary key: add one, or set no_primary_key: all_columns to key its events on every column", ErrPreflight, full))
		}
		t.allKey = true
		for i := range cols {
			cols[i].key = true
			keyOrder = append(keyOrder, i)
		}
	}
	st.byID[e.TableID] = t
	if err := s.historyFromMap(t, cols, keyOrder); err != nil {
		return err
	}
	return s.retable(t, cols, keyOrder)
}

// retable gives a table new columns when they are not its own; the next
// event registers the new schema version.
func (s *Source) retable(t *table, cols []column, keyOrder []int) error {
	if sameColumns(t.cols, cols) {
		return nil
	}
	fresh := t.cols == nil
	t.keyOrder = keyOrder
	if err := t.setColumns(cols, s.cfg.prefix); err != nil {
		return err
	}
	if !fresh {
		s.log.Info("table changed: new schema", "table", t.full(), "columns", len(cols))
	}
	return nil
}

// historyFromMap stores a table map's columns in the history when they
// are not what it has (a statement it could not follow, or a table it
// had no definition of).
func (s *Source) historyFromMap(t *table, cols []column, keyOrder []int) error {
	if s.hist == nil {
		return nil
	}
	full := t.full()
	d := &tableDef{db: t.db, name: t.name, cols: cols}
	if old := s.defs[full]; old != nil {
		d.charset = old.charset
		if sameDef(old, cols, t.allKey) {
			return nil
		}
		s.mismatches++
		s.log.Warn("the schema history had other columns than the binlog's table map; the table map's are stored", "table", full)
	} else if s.ddl != nil {
		d.charset, _ = s.ddl.dbCharset(t.db)
	}
	if !t.allKey {
		for _, i := range keyOrder {
			d.key = append(d.key, cols[i].name)
		}
	}
	s.defs[full] = d
	st := s.stream
	return s.hist.put(st.ctx, streamPos(s.gen, st.fileNum, 0, st.txn.start), "", s.defs, []string{full})
}

// sameDef says whether a definition has a table map's columns (their
// nullability aside: a table map's is the server's own).
func sameDef(d *tableDef, cols []column, allKey bool) bool {
	mine, _ := d.withKey()
	if len(mine) != len(cols) {
		return false
	}
	for i := range mine {
		a, b := mine[i], cols[i]
		a.nullable, b.nullable = false, false
		if allKey {
			a.key, b.key = false, false
		}
		if !a.same(b) {
			return false
		}
	}
	return true
}

// historyTableMap gives a table the columns the history has for it, for
// a binlog without column metadata, after checking them against the
// table map's types.
func (s *Source) historyTableMap(e *replication.TableMapEvent, t *table) error {
	st := s.stream
	full := t.full()
	d := s.defs[full]
	if d == nil {
		return connect.Permanent(fmt.Errorf("%w: the schema history has no definition of %s, and the binlog carries no column metadata (binlog_row_metadata is not FULL): "+
			"set binlog_row_metadata = FULL and delete the connector's offsets to take a new snapshot", ErrPreflight, full))
	}
	if err := fitsMap(d, e); err != nil {
		return connect.Permanent(fmt.Errorf("%w: %v: the schema history does not match the binlog, so its rows cannot be decoded: "+
			"set binlog_row_metadata = FULL and delete the connector's offsets to take a new snapshot", ErrPreflight, err))
	}
	cols, order, err := s.keyedColumns(t, d)
	if err != nil {
		return connect.Permanent(err)
	}
	for i := range cols {
		_, cols[i].nullable = e.Nullable(i)
	}
	st.byID[e.TableID] = t
	return s.retable(t, cols, order)
}

func sameColumns(a, b []column) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].same(b[i]) {
			return false
		}
	}
	return true
}

// captures says whether the configuration captures a table.
func (s *Source) captures(full string) bool {
	for _, p := range s.cfg.tables {
		if capture.Match(p, full) {
			return !capture.Excluded(s.cfg.exclude, full)
		}
	}
	return false
}

// rows turns a rows event into changes.
func (s *Source) rows(ev *replication.BinlogEvent, e *replication.RowsEvent, out []connect.Record) ([]connect.Record, error) {
	st := s.stream
	t := st.byID[e.TableID]
	if t == nil {
		return out, nil
	}
	if !st.txn.open {
		// A server that logged no BEGIN or GTID: the transaction starts
		// at its first table map, so a restart there reads the maps too.
		s.beginTxn(st.mapsAt, "", 0)
	}
	decode := func(vals []any) (*avrobin.Ordered, error) {
		row := st.flat.carve(t.fields)
		for i := range t.cols {
			c := &t.cols[i]
			var v any
			if i < len(vals) {
				v = vals[i]
			}
			d, err := c.fromBinlog(v, t.decs[i])
			if err != nil {
				return nil, fmt.Errorf("%s.%s: %w", t.full(), c.name, err)
			}
			row.Values[i] = d
		}
		return row, nil
	}
	switch ev.Header.EventType {
	case replication.WRITE_ROWS_EVENTv0, replication.WRITE_ROWS_EVENTv1, replication.WRITE_ROWS_EVENTv2, replication.MARIADB_WRITE_ROWS_COMPRESSED_EVENT_V1:
		for _, vals := range e.Rows {
			after, err := decode(vals)
			if err != nil {
				return out, err
			}
			out = s.emit(out, t, "c", nil, after)
		}
	case replication.DELETE_ROWS_EVENTv0, replication.DELETE_ROWS_EVENTv1, replication.DELETE_ROWS_EVENTv2, replication.MARIADB_DELETE_ROWS_COMPRESSED_EVENT_V1:
		for _, vals := range e.Rows {
			before, err := decode(vals)
			if err != nil {
				return out, err
			}
			out = s.emit(out, t, "d", before, nil)
		}
	case replication.UPDATE_ROWS_EVENTv0, replication.UPDATE_ROWS_EVENTv1, replication.UPDATE_ROWS_EVENTv2, replication.MARIADB_UPDATE_ROWS_COMPRESSED_EVENT_V1:
		for i := 0; i+1 < len(e.Rows); i += 2 {
			before, err := decode(e.Rows[i])
			if err != nil {
				return out, err
			}
			after, err := decode(e.Rows[i+1])
			if err != nil {
				return out, err
			}
			if !t.sameKey(before, after) {
				// The key changed: a delete of the old key (and its
				// tombstone), then a create of the new one, as Debezium does.
				out = s.emit(out, t, "d", before, nil)
				out = s.emit(out, t, "c", nil, after)
				continue
			}
			out = s.emit(out, t, "u", before, after)
		}
	default:
		return out, fmt.Errorf("%s: rows event of type %s (MySQL's PARTIAL_JSON updates log only a diff: set binlog_row_value_options to '')", t.full(), ev.Header.EventType)
	}
	return out, nil
}

// txnSource is the source block of a table's events in the current
// transaction: the same for all of them but the row, so its values are
// made once per table and copied, in schema order (avrobin.Ordered),
// carved from a slab: no map per event.
func (s *Source) txnSource(t *table, row int) *avrobin.Ordered {
	st := s.stream
	if st.txn.sources == nil {
		st.txn.sources = map[*table][]any{}
	}
	tmpl := st.txn.sources[t]
	if tmpl == nil {
		m := s.source(t, st.txn.ts, "false", st.txn.start, 0, st.txn.gtid, st.txn.thread)
		tmpl = make([]any, len(sourceNames))
		for i, n := range sourceNames {
			tmpl[i] = m[n]
		}
		st.txn.sources[t] = tmpl
	}
	o := st.flat.carve(sourceNames)
	copy(o.Values, tmpl)
	o.Values[sourceRow] = int32(row)
	return o
}

// slabs are where records are carved from: a change's row images, key,
// envelope and source block cost no allocation of their own. A slab is
// only appended to, so a record handed out is never written again, and
// it is freed once no record carved from it is alive. So that this comes,
// no value in a slab points to a record of the same slabs: the flat ones
// hold rows, keys and source blocks (scalars only), the envelopes' the
// envelopes, which point to flat records. Were both in one, each slab
// would hold records pointing to the one before, and the stream's current
// slab would keep every earlier one alive.
type slabs struct {
	values []any
	blocks []avrobin.Ordered
}

// carve returns a record of the given fields, its values nil.
func (sl *slabs) carve(names []string) *avrobin.Ordered {
	n := len(names)
	if len(sl.values)+n > cap(sl.values) {
		sl.values = make([]any, 0, max(4096, n))
	}
	if len(sl.blocks) == cap(sl.blocks) {
		sl.blocks = make([]avrobin.Ordered, 0, 512)
	}
	at := len(sl.values)
	sl.values = sl.values[:at+n]
	sl.blocks = append(sl.blocks, avrobin.Ordered{Names: names, Values: sl.values[at : at+n : at+n]})
	return &sl.blocks[len(sl.blocks)-1]
}

// The ops' values, boxed once.
var opValues = map[string]any{"c": "c", "u": "u", "d": "d", "t": "t"}

// envelopeNames are the envelope's fields in schema order
// (capture.Schemas).
var envelopeNames = []string{"before", "after", "source", "op", "ts_ms"}

// emit appends a change (and a tombstone after a delete) with the next
// positions of the transaction, unless the log already holds them.
func (s *Source) emit(out []connect.Record, t *table, op string, before, after *avrobin.Ordered) []connect.Record {
	st := s.stream
	row := after
	if row == nil {
		row = before
	}
	ts := st.txn.ts
	if ts.IsZero() {
		ts = time.Now()
	}
	if st.nowMs == nil {
		st.nowMs = time.Now().UnixMilli() // once per rows event
	}
	value := st.envelopes.carve(envelopeNames)
	if before != nil { // else an untyped nil: the union's null
		value.Values[0] = before
	}
	if after != nil {
		value.Values[1] = after
	}
	value.Values[2], value.Values[3], value.Values[4] = s.txnSource(t, int(st.txn.seq)), opValues[op], st.nowMs
	key := t.keyOf(st, row)
	r := connect.Record{Topic: t.topic, Key: key, KeySchema: t.keySchema, Value: value, ValueSchema: t.valueSchema, Timestamp: ts}
	if op == "t" {
		r.Key, r.KeySchema = nil, nil
		r.Broadcast = true // every partition's consumer must see it in order
	}
	out = s.place(out, r)
	if op == "d" && len(t.keyCols) > 0 { // the tombstone
		out = s.place(out, connect.Record{Topic: t.topic, Key: key, KeySchema: t.keySchema, Timestamp: ts})
	}
	return out
}

// place gives r the transaction's next position and appends it, unless
// the log holds it already.
func (s *Source) place(out []connect.Record, r connect.Record) []connect.Record {
	st := s.stream
	st.txn.seq++
	r.Position = st.position(s.gen, st.txn.seq)
	if st.resumeAfter != nil {
		if bytes.Compare(r.Position, st.resumeAfter) <= 0 {
			return out
		}
		st.resumeAfter = nil
	}
	st.handed = r.Position
	return append(out, r)
}

// position is the position of row seq of the transaction, carved from a
// slab: one allocation for many records.
func (st *stream) position(gen uint32, seq uint64) []byte {
	if st.txn.encoded == nil {
		st.txn.encoded = st.txn.start.append(nil)
	}
	n := fixedLen + len(st.txn.encoded)
	if len(st.slab)+n > cap(st.slab) {
		st.slab = make([]byte, 0, max(64<<10, n))
	}
	at := len(st.slab)
	st.slab = appendStreamPos(st.slab, gen, st.fileNum, seq, st.txn.start.pos, st.txn.encoded)
	return st.slab[at : at+n : at+n]
}
