package postgres

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/eddy-cdc/eddy/connect"
	"github.com/eddy-cdc/eddy/internal/capture"
)

// Snapshot modes.
const (
	SnapshotInitial     = "initial"
	SnapshotNever       = "never"
	SnapshotInitialOnly = "initial_only"
	SnapshotWhenNeeded  = "when_needed"
)

type config struct {
	dsn               string
	slot, publication string
	tables, exclude   []string
	snapshot          string
	prefix            string
	heartbeat         time.Duration
	heartbeatQuery    string
	toast             string
	dropSlot          bool
	batch             int
	chunk             int
	orphanSlots       string // warn | drop
	slotCheck         time.Duration
	messages          []string // logical-decoding message prefixes to capture
}

// Source captures changes of the configured tables; see the package doc.
type Source struct {
	cfg  config
	name string
	log  *slog.Logger
	user string
	db   string

	conn   *pgx.Conn      // catalog, snapshot, heartbeats
	repl   *pgconn.PgConn // the replication protocol
	order  []*table
	byName map[string]*table
	types  map[uint32]typeInfo
	byRel  map[uint32]*table
	props  map[typeKey]map[string]any // sourceProps, by type
	peers  func() []connect.Peer
	slots  slotWatch
	msgs   *messageStream // nil: no messages captured

	snap *snapshot // set while the initial snapshot runs
	done bool      // initial_only, after its snapshot

	// Streaming.
	streaming   bool
	resumeAfter []byte // records at or before this are in the log
	txn         txnState
	completed   []txnEnd // watermarks: the slot may move to end once last is committed
	emitted     []byte   // last position handed out
	committed   []byte   // last position the runtime committed
	confirmed   pglogrepl.LSN
	nextStatus  time.Time
	nextBeat    time.Time
	nextPing    time.Time // when idle, ask the server where it is
	nextLag     time.Time
	lagBytes    int64
	lagKnown    bool
}

type txnState struct {
	open       bool
	finalLSN   pglogrepl.LSN
	xid        uint32
	commitTime time.Time
	seq        uint64
	emitted    bool
	sources    map[*table]map[string]any
}

// txnEnd is a watermark: once the record at last (the newest emitted when
// a transaction ended or the server reported its position) is committed,
// the slot may be confirmed up to end.
type txnEnd struct {
	last []byte
	end  pglogrepl.LSN
}

// Replication names the replication slot a connector's source reads and
// the publication it reads through: its slot and publication params, or
// eddy_<connector>.
func Replication(connector string, p connect.Params) (slot, publication string) {
	slot, publication = p.String("slot"), p.String("publication")
	if slot == "" {
		slot = "eddy_" + capture.AvroName(connector)
	}
	if publication == "" {
		publication = "eddy_" + capture.AvroName(connector)
	}
	return slot, publication
}

// New builds the source from validated params.
func New(p connect.Params, env connect.Env) (connect.Source, error) {
	cfg := config{
		dsn: p.String("dsn"), slot: p.String("slot"), publication: p.String("publication"),
		tables: p.Strings("tables"), exclude: p.Strings("exclude_tables"), snapshot: p.String("snapshot"),
		prefix: p.String("topic_prefix"), heartbeat: p.Duration("heartbeat_interval"), heartbeatQuery: p.String("heartbeat_query"),
		toast: p.String("toast_placeholder"), dropSlot: p.Bool("slot_drop_on_delete"), batch: int(p.Int("batch_size")), chunk: int(p.Int("snapshot_chunk_rows")),
		orphanSlots: p.String("orphan_slots"), slotCheck: p.Duration("slot_check_interval"),
		messages: p.Strings("messages"),
	}
	cfg.slot, cfg.publication = Replication(env.Connector, p)
	if len(cfg.tables) == 0 {
		return nil, fmt.Errorf("tables: name at least one table or pattern (such as public.*)")
	}
	if cfg.slotCheck <= 0 {
		return nil, fmt.Errorf("line %d: slot_check_interval: %s is not positive", p.Line("slot_check_interval"), cfg.slotCheck)
	}
	var err error
	if cfg.tables, err = tablePatterns("tables", cfg.tables); err != nil {
		return nil, err
	}
	if cfg.exclude, err = tablePatterns("exclude_tables", cfg.exclude); err != nil {
		return nil, err
	}
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	msgs, err := newMessageStream(cfg.prefix, cfg.messages)
	if err != nil {
		return nil, err
	}
	return &Source{cfg: cfg, name: env.Connector, log: log, peers: env.Peers, msgs: msgs}, nil
}

// Open connects, checks the server, and positions the source: a snapshot
// when there is nothing to continue from (and the mode asks for one),
// else the slot's stream after position. A preflight failure is permanent:
// the connector stops with it rather than retrying.
func (s *Source) Open(ctx context.Context, position []byte) error {
	err := s.open(ctx, position)
	if errors.Is(err, ErrPreflight) {
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
	s.user, s.db = conn.Config().User, conn.Config().Database
	if err := s.preflight(ctx); err != nil {
		return err
	}
	if s.types, err = loadTypes(ctx, conn); err != nil {
		return err
	}
	if err := s.loadTables(ctx); err != nil {
		return err
	}
	if err := s.ensurePublication(ctx); err != nil {
		return err
	}
	slot, err := s.readSlot(ctx)
	if err != nil {
		return err
	}
	rcfg, err := pgconn.ParseConfig(s.cfg.dsn)
	if err != nil {
		return fmt.Errorf("dsn: %w", err)
	}
	pinSession(rcfg.RuntimeParams)
	rcfg.RuntimeParams["replication"] = "database"
	if s.repl, err = pgconn.ConnectConfig(ctx, rcfg); err != nil {
		return fmt.Errorf("replication connection: %w", err)
	}

	streamingPos := len(position) > 0 && position[0] == posStream
	snapshotDone := len(position) > 0 && position[0] == posSnapshot && bytes.Equal(position[9:], snapshotEndMark)
	switch {
	case streamingPos || snapshotDone:
		if slot.walStatus == "lost" {
			// The server removed WAL the slot still needed (it retained
			// more than max_slot_wal_keep_size): those changes are gone,
			// and streaming on would skip them.
			if s.cfg.snapshot == SnapshotWhenNeeded {
				s.log.Warn("the slot lost WAL it needed (max_slot_wal_keep_size): taking a new snapshot", "slot", s.cfg.slot)
				return s.startSnapshot(ctx, slot, true)
			}
			return fmt.Errorf("%w: slot %s was invalidated by the server: it retained more WAL than max_slot_wal_keep_size allows, and the changes in that WAL are gone. Set snapshot: when_needed to take a new snapshot (the slot is made anew), or reset the connector's offsets", ErrPreflight, s.cfg.slot)
		}
		if !slot.exists {
			if s.cfg.snapshot == SnapshotWhenNeeded {
				s.log.Warn("the slot is gone: taking a new snapshot", "slot", s.cfg.slot)
				return s.startSnapshot(ctx, slot, true)
			}
			return fmt.Errorf("%w: slot %s is missing, so the changes after the stored position cannot be read: set snapshot: when_needed to take a new snapshot, or reset the connector's offsets", ErrPreflight, s.cfg.slot)
		}
		if s.cfg.snapshot == SnapshotInitialOnly {
			s.done = true
			return nil
		}
		return s.startStream(ctx, 0, position)
	case s.cfg.snapshot == SnapshotNever:
		if !slot.exists {
			res, err := pglogrepl.CreateReplicationSlot(ctx, s.repl, s.cfg.slot, "pgoutput", pglogrepl.CreateReplicationSlotOptions{SnapshotAction: "NOEXPORT_SNAPSHOT"})
			if err != nil {
				return fmt.Errorf("create slot %s: %w", s.cfg.slot, err)
			}
			s.log.Info("created replication slot", "slot", s.cfg.slot, "lsn", res.ConsistentPoint)
		}
		return s.startStream(ctx, 0, position)
	default:
		// Nothing stored yet, or a snapshot a crash interrupted. The log may
		// hold an earlier snapshot's reads when a position was stored, and
		// also when none was but the slot exists (a crash before the first
		// position was stored, or offsets reset with the slot kept): the
		// new snapshot then starts with a truncate marker, so a row deleted
		// in between does not live on in the log's image.
		return s.startSnapshot(ctx, slot, len(position) > 0 || slot.exists)
	}
}

// pinSession sets, in a connection's startup parameters, the settings
// that shape the text of values: they then hold whatever the server,
// database or role defaults say (a startup parameter overrides those), in
// the snapshot's session and the walsender's alike, so the decoders read
// one format. ISO dates and times in UTC, intervals as PostgreSQL writes
// them, floats that read back exactly, bytea in hex.
func pinSession(params map[string]string) {
	params["DateStyle"] = "ISO, MDY"
	params["IntervalStyle"] = "postgres"
	params["TimeZone"] = "UTC"
	params["extra_float_digits"] = "3"
	params["bytea_output"] = "hex"
}

// connect opens an ordinary connection with the session pinned.
func (s *Source) connect(ctx context.Context) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(s.cfg.dsn)
	if err != nil {
		return nil, fmt.Errorf("dsn: %w", err)
	}
	pinSession(cfg.RuntimeParams)
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	return conn, nil
}

// Position kinds: the first byte of every position.
const (
	posSnapshot = 0x00
	posStream   = 0x01
)

// snapshotEndMark is the table and row of the last snapshot record, the
// greatest of its epoch: a stored position ending so says the snapshot is
// complete.
var snapshotEndMark = bytes.Repeat([]byte{0xff}, 12)

func snapshotPos(epoch uint64, table uint32, row uint64) []byte {
	b := make([]byte, 0, 21)
	b = append(b, posSnapshot)
	b = binary.BigEndian.AppendUint64(b, epoch)
	b = binary.BigEndian.AppendUint32(b, table)
	return binary.BigEndian.AppendUint64(b, row)
}

func streamPos(lsn pglogrepl.LSN, seq uint64) []byte {
	b := make([]byte, 0, 17)
	b = append(b, posStream)
	b = binary.BigEndian.AppendUint64(b, uint64(lsn))
	return binary.BigEndian.AppendUint64(b, seq)
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

// Commit records that every record up to position is durable; the slot is
// confirmed up to the end of each transaction that is now wholly durable.
func (s *Source) Commit(ctx context.Context, position []byte) error {
	s.committed = position
	if !s.streaming {
		return nil
	}
	before := s.confirmed
	s.release(position)
	if s.confirmed > before {
		return s.sendStatus(ctx, false)
	}
	return nil
}

// sendStatus reports the confirmed position; with reply, it asks the
// server for a keepalive, whose position tells an idle source how far the
// server has read.
func (s *Source) sendStatus(ctx context.Context, reply bool) error {
	s.nextStatus = time.Now().Add(10 * time.Second)
	if s.confirmed == 0 && !reply {
		return nil // nothing confirmed yet: leave the slot where it is
	}
	err := pglogrepl.SendStandbyStatusUpdate(ctx, s.repl, pglogrepl.StandbyStatusUpdate{WALWritePosition: s.confirmed, WALFlushPosition: s.confirmed, WALApplyPosition: s.confirmed, ReplyRequested: reply})
	if err != nil {
		return fmt.Errorf("confirm %s to slot %s: %w", s.confirmed, s.cfg.slot, err)
	}
	return nil
}

// Close closes both connections.
func (s *Source) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var errs []error
	if s.snap != nil && s.snap.tx != nil {
		s.snap.tx.Rollback(ctx)
	}
	if s.repl != nil {
		errs = append(errs, s.repl.Close(ctx))
	}
	if s.conn != nil {
		errs = append(errs, s.conn.Close(ctx))
	}
	return errors.Join(errs...)
}

// txnSource is the source block of a table's events in the current
// transaction: the same for all of them, so built once and shared (no
// transform edits the source block).
func (s *Source) txnSource(t *table) map[string]any {
	if s.txn.sources == nil {
		s.txn.sources = map[*table]map[string]any{}
	}
	m := s.txn.sources[t]
	if m == nil {
		m = s.source(t, s.txn.commitTime, "false", s.txn.xid, s.txn.finalLSN)
		s.txn.sources[t] = m
	}
	return m
}

// source is the "source" block of an event.
func (s *Source) source(t *table, ts time.Time, snapshot string, xid uint32, lsn pglogrepl.LSN) map[string]any {
	m := map[string]any{"version": "eddy", "connector": "postgresql", "name": s.cfg.prefix, "ts_ms": ts.UnixMilli(),
		"snapshot": snapshot, "db": s.db, "schema": t.schema, "table": t.name, "txId": nil, "lsn": nil}
	if xid != 0 {
		m["txId"] = int64(xid)
	}
	if lsn != 0 {
		m["lsn"] = int64(lsn)
	}
	return m
}

// LagBytes is how far the slot's confirmed position is behind the server's
// current WAL, measured at most every few seconds. The slot's own
// confirmed_flush_lsn counts until this source has confirmed anything
// (right after a snapshot, say): a lag is never measured from zero.
func (s *Source) LagBytes() (int64, bool) {
	if !s.streaming || s.conn == nil || time.Now().Before(s.nextLag) {
		return s.lagBytes, s.lagKnown
	}
	s.nextLag = time.Now().Add(5 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var cur, slot string
	if err := s.conn.QueryRow(ctx, `select pg_current_wal_lsn()::text, coalesce((select confirmed_flush_lsn::text from pg_replication_slots
		where slot_name = $1 and database = current_database()), '0/0')`, s.cfg.slot).Scan(&cur, &slot); err != nil {
		return s.lagBytes, s.lagKnown
	}
	lsn, err := pglogrepl.ParseLSN(cur)
	if err != nil {
		return s.lagBytes, s.lagKnown
	}
	confirmed, err := pglogrepl.ParseLSN(slot)
	if err != nil {
		return s.lagBytes, s.lagKnown
	}
	confirmed = max(confirmed, s.confirmed)
	s.lagBytes, s.lagKnown = max(int64(lsn)-int64(confirmed), 0), true
	return s.lagBytes, true
}

// Reset drops the slot when slot_drop_on_delete is set: the connector's
// offsets are gone, so nothing will read the slot again, and a slot nobody
// reads holds WAL on the server forever.
func (s *Source) Reset(ctx context.Context) error {
	if !s.cfg.dropSlot {
		return nil
	}
	return s.Release(ctx)
}

// Held reports the connector's replication slot and the WAL it retains
// (connect.Holder), when the slot exists.
func (s *Source) Held(ctx context.Context) ([]connect.Retained, error) {
	conn, err := s.connect(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	var held []connect.Retained
	rows, err := conn.Query(ctx, `select slot_name, coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0)::bigint
		from pg_replication_slots where slot_name = $1 and database = current_database()`, s.cfg.slot)
	if err != nil {
		return nil, fmt.Errorf("look up slot %s: %w", s.cfg.slot, err)
	}
	for rows.Next() {
		var r connect.Retained
		if err := rows.Scan(&r.Name, &r.Bytes); err != nil {
			rows.Close()
			return nil, fmt.Errorf("look up slot %s: %w", s.cfg.slot, err)
		}
		r.Name = "replication slot " + r.Name
		held = append(held, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("look up slot %s: %w", s.cfg.slot, err)
	}
	return held, nil
}

// Release drops the connector's replication slot (connect.Holder); the
// connector's task is stopped.
func (s *Source) Release(ctx context.Context) error {
	conn, err := s.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	// The stopped task's walsender may hold the slot a moment longer.
	for try := 0; ; try++ {
		_, err := conn.Exec(ctx, "select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = $1 and database = current_database()", s.cfg.slot)
		var pgErr *pgconn.PgError
		if err != nil && errors.As(err, &pgErr) && pgErr.Code == pgerrcode.ObjectInUse && try < 50 {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if err != nil {
			return fmt.Errorf("drop slot %s: %w", s.cfg.slot, err)
		}
		break
	}
	s.log.Info("dropped the replication slot", "slot", s.cfg.slot)
	return nil
}
