// Package mysql is mysql-source: change capture from the binlog of MySQL
// or MariaDB, read as a replica. An initial snapshot consistent with the
// binlog, then every insert, update, delete and truncate of the captured
// tables in Debezium's MySQL envelope, to topics
// <topic_prefix>.<database>.<table>. Rows are decoded with the table
// metadata the binlog itself carries (binlog_row_metadata=FULL), or else
// with the connector's schema history (history.go), so DDL mid-stream
// gives a new schema version from the first row written under it.
package mysql

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/client"

	"github.com/eddy-cdc/eddy/connect"
)

// Snapshot modes.
const (
	SnapshotInitial     = "initial"
	SnapshotNever       = "never"
	SnapshotInitialOnly = "initial_only"
	SnapshotWhenNeeded  = "when_needed"
)

// ErrPreflight marks a setup problem the user must fix; retrying will not.
var ErrPreflight = errors.New("mysql-source preflight")

type config struct {
	addr, user, password string
	flavor               string // "" until detected
	serverID             uint32
	tables, exclude      []string
	snapshot             string
	prefix               string
	heartbeat            time.Duration
	batch                int
	chunk                int
	noKey                string // refuse | all_columns
	acceptGap            bool
}

// Source captures changes of the configured tables; see the package doc.
type Source struct {
	cfg  config
	name string
	log  *slog.Logger

	conn      *client.Conn // catalog, snapshot, lag
	order     []*table
	byName    map[string]*table
	collation map[uint64]string // collation id: character set
	serverID  uint32            // the origin's own
	gen       uint32            // the positions' generation (position.go)
	gtidMode  bool
	ddl       *ddlEnv

	// The schema history (history.go): hist is nil where the runtime
	// keeps none. defs are the tracked tables' definitions as of the
	// binlog read so far; fullMeta says the binlog's table maps carry
	// the columns themselves (binlog_row_metadata=FULL), so defs only
	// keep the history for a server that stops writing them.
	histFn     func() (connect.History, error)
	hist       *schemaHistory
	defs       map[string]*tableDef
	fullMeta   bool
	mismatches int // table maps whose columns the history had otherwise

	snap   *snapshot
	stream *stream
	done   bool // initial_only, after its snapshot

	durable  coords // the binlog position of the last change the log holds
	lagBytes int64
	lagKnown bool
	nextLag  time.Time
}

// ParseDSN takes apart the dsn param, mysql://user:password@host:port
// (port 3306 when none).
func ParseDSN(dsn string) (user, password, addr string, err error) {
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "mysql" && u.Scheme != "mariadb") || u.Host == "" {
		return "", "", "", errors.New("want mysql://user:password@host:port")
	}
	password, _ = u.User.Password()
	addr = u.Host
	if u.Port() == "" {
		addr += ":3306"
	}
	return u.User.Username(), password, addr, nil
}

// New builds the source from validated params.
func New(p connect.Params, env connect.Env) (connect.Source, error) {
	user, pw, addr, err := ParseDSN(p.String("dsn"))
	if err != nil {
		return nil, fmt.Errorf("line %d: dsn: %w", p.Line("dsn"), err)
	}
	cfg := config{addr: addr, user: user, password: pw, flavor: p.String("flavor"),
		tables: p.Strings("tables"), exclude: p.Strings("exclude_tables"), snapshot: p.String("snapshot"), prefix: p.String("topic_prefix"),
		heartbeat: p.Duration("heartbeat_interval"), batch: int(p.Int("batch_size")), chunk: int(p.Int("snapshot_chunk_rows")),
		noKey: p.String("no_primary_key"), acceptGap: p.Bool("accept_binlog_gap")}
	if len(cfg.tables) == 0 {
		return nil, fmt.Errorf("tables: name at least one table or pattern (such as shop.*)")
	}
	for _, key := range []string{"tables", "exclude_tables"} {
		for _, t := range p.Strings(key) {
			if !strings.Contains(t, ".") {
				return nil, fmt.Errorf("line %d: %s: %q: write database.table (such as shop.orders or shop.*)", p.Line(key), key, t)
			}
		}
	}
	id := p.Int("server_id")
	switch {
	case id < 0 || id > 1<<32-1:
		return nil, fmt.Errorf("line %d: server_id: %d is not between 1 and 4294967295", p.Line("server_id"), id)
	case id == 0:
		// A stable id of the connector's own, clear of the small ids
		// servers are usually given.
		h := fnv.New32a()
		h.Write([]byte(env.Connector))
		id = int64(h.Sum32()%(1<<30) + 1<<30)
	}
	cfg.serverID = uint32(id)
	if cfg.batch <= 0 || cfg.chunk <= 0 {
		return nil, fmt.Errorf("line %d: batch_size and snapshot_chunk_rows must be positive", p.Line("batch_size"))
	}
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Source{cfg: cfg, name: env.Connector, log: log, histFn: env.History}, nil
}

// Open connects, checks the server, and positions the source: a snapshot
// when there is nothing to continue from (and the mode asks for one), else
// the binlog after position. A preflight failure is permanent: the
// connector stops with it rather than retrying.
func (s *Source) Open(ctx context.Context, position []byte) error {
	err := s.open(ctx, position)
	if errors.Is(err, ErrPreflight) || errors.Is(err, errPosition) {
		return connect.Permanent(err)
	}
	return err
}

func (s *Source) open(ctx context.Context, position []byte) error {
	conn, err := s.connect(ctx)
	if err != nil {
		return err
	}
	s.conn = conn
	if err := s.preflight(ctx); err != nil {
		return err
	}
	if err := s.loadTables(ctx); err != nil {
		return err
	}
	if err := s.openHistory(ctx, position); err != nil {
		return err
	}
	if len(position) == 0 {
		if s.cfg.snapshot == SnapshotNever {
			at, err := s.serverPosition()
			if err != nil {
				return err
			}
			if err := s.baseline(ctx, at); err != nil {
				return err
			}
			return s.startStream(ctx, at, nil)
		}
		return s.startSnapshot(ctx, false)
	}
	pos, err := parsePosition(position)
	if err != nil {
		return err
	}
	s.gen = pos.gen
	if pos.kind == posSnapshot && !pos.done {
		// A snapshot a crash interrupted: taken again from the start,
		// each table's reads preceded by a truncate.
		return s.startSnapshot(ctx, true)
	}
	if s.cfg.snapshot == SnapshotInitialOnly {
		s.done = true
		return nil
	}
	gone, err := s.purged(pos.at)
	if err != nil {
		return err
	}
	if gone != "" {
		switch {
		case s.cfg.snapshot == SnapshotWhenNeeded:
			s.log.Warn("the binlog the stored position needs was purged: taking a new snapshot", "position", pos.at.String(), "why", gone)
			return s.startSnapshot(ctx, true)
		case s.cfg.acceptGap:
			at, err := s.earliestPosition()
			if err != nil {
				return err
			}
			s.log.Error("the binlog the stored position needs was purged: accept_binlog_gap is set, so streaming goes on from the oldest binlog the server has; the changes in between are LOST",
				"position", pos.at.String(), "from", at.String(), "why", gone)
			if err := s.baseline(ctx, at); err != nil {
				return err
			}
			return s.startStream(ctx, at, nil)
		}
		return fmt.Errorf("%w: the binlog at the stored position %s is gone (%s): the changes after it cannot be read. "+
			"Set snapshot: when_needed to take a new snapshot, or accept_binlog_gap: true to go on from the oldest binlog and lose the changes in between; "+
			"keep binlogs longer (binlog_expire_logs_seconds, expire_logs_days) so this does not happen again", ErrPreflight, pos.at.String(), gone)
	}
	if pos.kind == posSnapshot {
		return s.startStream(ctx, pos.at, nil)
	}
	return s.startStream(ctx, pos.at, position)
}

// connect opens an ordinary connection: UTF-8, UTC, long writes allowed
// (a snapshot chunk waits while the runtime appends the one before).
func (s *Source) connect(ctx context.Context) (*client.Conn, error) {
	conn, err := client.ConnectWithContext(ctx, s.cfg.addr, s.cfg.user, s.cfg.password, "", 10*time.Second)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", s.cfg.addr, err)
	}
	for _, q := range []string{"set names utf8mb4", "set time_zone = '+00:00'", "set session net_write_timeout = 3600", "set session net_read_timeout = 3600"} {
		if _, err := conn.Execute(q); err != nil {
			conn.Close()
			return nil, fmt.Errorf("%s: %w", q, err)
		}
	}
	return conn, nil
}

// Poll returns the next records: snapshot reads first, then changes.
func (s *Source) Poll(ctx context.Context) ([]connect.Record, error) {
	if s.done {
		return nil, io.EOF
	}
	if s.snap != nil {
		return s.pollSnapshot(ctx)
	}
	return s.pollStream(ctx)
}

// Commit notes how far the log holds the binlog, for LagBytes; nothing
// goes upstream: a replica acknowledges nothing to the server, and the
// stored position is where the source resumes.
func (s *Source) Commit(ctx context.Context, position []byte) error {
	if p, err := parsePosition(position); err == nil && p.kind == posStream {
		s.durable = p.at
	}
	if s.hist != nil {
		if err := s.hist.prune(ctx, position); err != nil {
			s.log.Warn("could not prune the schema history; it is pruned at a later commit", "err", err)
		}
	}
	return nil
}

// Close closes the connections; twice is no error.
func (s *Source) Close() error {
	if s.stream != nil {
		s.stream.close()
		s.stream = nil
	}
	var err error
	if s.conn != nil {
		err = s.conn.Close()
		s.conn = nil
	}
	return err
}

// connectorName is the source.connector of events.
func (s *Source) connectorName() string {
	if s.cfg.flavor == "mariadb" {
		return "mariadb"
	}
	return "mysql"
}

// source is the "source" block of an event.
func (s *Source) source(t *table, ts time.Time, snapshot string, at coords, row int, gtid string, thread int64) map[string]any {
	m := map[string]any{"version": "eddy", "connector": s.connectorName(), "name": s.cfg.prefix, "ts_ms": ts.UnixMilli(),
		"snapshot": snapshot, "db": t.db, "table": t.name, "server_id": int64(s.serverID), "gtid": nil, "file": at.file, "pos": int64(at.pos),
		"row": int32(row), "thread": nil}
	if gtid != "" {
		m["gtid"] = gtid
	}
	if thread != 0 {
		m["thread"] = thread
	}
	return m
}

// LagBytes is how much binlog the server has written past the last
// change durable in the log (or the stream's start, before the first),
// measured at most every few seconds (connect.LagReporter).
func (s *Source) LagBytes() (int64, bool) {
	st := s.stream
	if st == nil || s.snap != nil || s.conn == nil || time.Now().Before(s.nextLag) {
		return s.lagBytes, s.lagKnown
	}
	s.nextLag = time.Now().Add(5 * time.Second)
	names, sizes, err := s.binlogs()
	if err != nil {
		return s.lagBytes, s.lagKnown
	}
	var behind int64
	after := false
	read := s.durable
	if read.file == "" {
		read = st.start
	}
	for _, n := range names {
		switch {
		case n == read.file:
			behind += max(int64(sizes[n])-int64(read.pos), 0)
			after = true
		case after:
			behind += int64(sizes[n])
		}
	}
	s.lagBytes, s.lagKnown = behind, after
	return behind, after
}
