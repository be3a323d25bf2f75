package clean

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/eddy-cdc/eddy/connect"
	"github.com/eddy-cdc/eddy/sources/postgres"
)

// pgStore cleans behind postgres-source: the fence is the WAL insert
// position read in a REPEATABLE READ snapshot (every commit the snapshot
// sees was inserted before it), and capture is past it once the
// connector's slot is confirmed there.
type pgStore struct {
	snap, del   *pgx.Conn
	tx          pgx.Tx
	table       string // quoted
	id          string // quoted
	idType      string // the id column's type, for the text ids given back
	slot        string
	fenceLSN    string
	connector   string
	publication string
}

func openPostgres(ctx context.Context, j *Job, peer connect.Peer) (*pgStore, error) {
	dsn := j.dsn
	if dsn == "" {
		dsn = peer.Params.String("dsn")
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("connector %s: dsn: %w", peer.Name, err)
	}
	delete(cfg.RuntimeParams, "replication") // plain sessions, not a walsender's
	s := &pgStore{table: pgQuote(j.table), id: pgQuote(j.idColumn), connector: peer.Name}
	s.slot, s.publication = postgres.Replication(peer.Name, peer.Params)
	if s.snap, err = pgx.ConnectConfig(ctx, cfg); err != nil {
		return nil, fmt.Errorf("connect to %s: %w", cfg.Host, err)
	}
	if s.del, err = pgx.ConnectConfig(ctx, cfg); err != nil {
		s.close()
		return nil, fmt.Errorf("connect to %s: %w", cfg.Host, err)
	}
	if err := s.check(ctx, j.table, j.idColumn); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// check resolves the id column's type and refuses a table the
// connector's publication does not carry: its rows are never captured.
func (s *pgStore) check(ctx context.Context, table, idColumn string) error {
	var in bool
	err := s.del.QueryRow(ctx, `
		select format_type(a.atttypid, a.atttypmod),
		       exists (select 1 from pg_publication_tables p join pg_class c on c.relname = p.tablename
		               join pg_namespace n on n.oid = c.relnamespace and n.nspname = p.schemaname
		               where p.pubname = $3 and c.oid = $1::text::regclass)
		from pg_attribute a where a.attrelid = $1::text::regclass and a.attname = $2 and not a.attisdropped`,
		s.table, idColumn, s.publication).Scan(&s.idType, &in)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("table %s has no column %s (id_column)", table, idColumn)
	case err != nil:
		return fmt.Errorf("describe table %s: %w", table, err)
	case !in:
		return fmt.Errorf("table %s is not in publication %s of connector %s: its rows are not captured, and none is deleted", table, s.publication, s.connector)
	}
	return nil
}

func (s *pgStore) begin(ctx context.Context) error {
	var err error
	if s.tx, err = s.snap.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}); err != nil {
		return fmt.Errorf("begin the snapshot: %w", err)
	}
	// The snapshot is taken as this statement starts; the function reads
	// the insert position after.
	if err := s.tx.QueryRow(ctx, "select pg_current_wal_insert_lsn()::text").Scan(&s.fenceLSN); err != nil {
		return fmt.Errorf("read the WAL position: %w", err)
	}
	return nil
}

func (s *pgStore) page(ctx context.Context, after string, n int) ([]string, error) {
	q := fmt.Sprintf("select %[1]s::text from %[2]s order by %[1]s limit $1", s.id, s.table)
	args := []any{n}
	if after != "" {
		q = fmt.Sprintf("select %[1]s::text from %[2]s where %[1]s > $2::text::%[3]s order by %[1]s limit $1", s.id, s.table, s.idType)
		args = append(args, after)
	}
	rows, err := s.tx.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read outbox ids: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read outbox ids: %w", err)
	}
	return ids, nil
}

func (s *pgStore) captured(ctx context.Context) (bool, error) {
	var past *bool
	err := s.del.QueryRow(ctx, "select confirmed_flush_lsn >= $1::pg_lsn from pg_replication_slots where slot_name = $2", s.fenceLSN, s.slot).Scan(&past)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, fmt.Errorf("replication slot %s of connector %s does not exist: has it started?", s.slot, s.connector)
	}
	if err != nil {
		return false, fmt.Errorf("read slot %s: %w", s.slot, err)
	}
	return past != nil && *past, nil
}

func (s *pgStore) remove(ctx context.Context, ids []string) (int64, error) {
	tag, err := s.del.Exec(ctx, fmt.Sprintf("delete from %s where %s = any($1::text[]::%s[])", s.table, s.id, s.idType), ids)
	if err != nil {
		return 0, fmt.Errorf("delete captured rows: %w", err)
	}
	return tag.RowsAffected(), nil
}

func (s *pgStore) left(ctx context.Context) (int64, string, error) {
	var n int64
	var least *string
	if err := s.del.QueryRow(ctx, fmt.Sprintf("select count(*), min(%s::text) from %s", s.id, s.table)).Scan(&n, &least); err != nil {
		return 0, "", fmt.Errorf("count outbox rows: %w", err)
	}
	if least == nil {
		return n, "", nil
	}
	return n, *least, nil
}

func (s *pgStore) fence() string { return s.fenceLSN }

func (s *pgStore) close() {
	ctx := context.Background()
	if s.tx != nil {
		_ = s.tx.Rollback(ctx) // read-only: nothing to keep
	}
	for _, c := range []*pgx.Conn{s.snap, s.del} {
		if c != nil {
			_ = c.Close(ctx)
		}
	}
}

// pgQuote quotes a name or schema.name.
func pgQuote(name string) string {
	parts := strings.Split(name, ".")
	for i, p := range parts {
		parts[i] = `"` + strings.ReplaceAll(p, `"`, `""`) + `"`
	}
	return strings.Join(parts, ".")
}
