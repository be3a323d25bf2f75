package clean

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	driver "github.com/go-sql-driver/mysql"

	"github.com/eddy-cdc/eddy/connect"
	"github.com/eddy-cdc/eddy/sources/mysql"
)

// myStore cleans behind mysql-source: the snapshot is a transaction WITH
// CONSISTENT SNAPSHOT; the fence is the binlog end read after it began (a
// transaction is written to the binlog before the engine makes it
// visible, so every one the snapshot sees ends at or before the fence);
// capture is past it once the connector's stored position — where the
// transaction being read began, or a heartbeat marker between
// transactions — is at or after the fence.
type myStore struct {
	db        *sql.DB
	snap      *sql.Conn
	table, id string // quoted
	connector string
	position  func(string) ([]byte, bool)
	file      string
	offset    uint64
}

func openMySQL(ctx context.Context, j *Job, peer connect.Peer) (*myStore, error) {
	dbName, table, ok := strings.Cut(j.table, ".")
	if !ok {
		return nil, fmt.Errorf("table %q: write db.table for a mysql-source connector", j.table)
	}
	if !mysql.Captures(peer.Params, j.table) {
		return nil, fmt.Errorf("table %s is not among the tables of connector %s: its rows are not captured, and none is deleted", j.table, peer.Name)
	}
	dsn, err := sqlDSN(j.dsn, peer.Params.String("dsn"))
	if err != nil {
		return nil, fmt.Errorf("connector %s: %w", peer.Name, err)
	}
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return nil, fmt.Errorf("connector %s: dsn: %w", peer.Name, err)
	}
	db.SetMaxOpenConns(2)
	s := &myStore{db: db, table: myQuote(dbName) + "." + myQuote(table), id: myQuote(j.idColumn), connector: peer.Name, position: j.position}
	if s.snap, err = db.Conn(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect: %w", err)
	}
	return s, nil
}

// sqlDSN is the driver's form of the job's own dsn, or else the
// connector's.
func sqlDSN(own, connector string) (string, error) {
	raw := own
	if raw == "" {
		raw = connector
	}
	user, password, addr, err := mysql.ParseDSN(raw)
	if err != nil {
		return "", fmt.Errorf("dsn: %w", err)
	}
	cfg := driver.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr = user, password, "tcp", addr
	return cfg.FormatDSN(), nil
}

func (s *myStore) begin(ctx context.Context) error {
	if _, err := s.snap.ExecContext(ctx, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"); err != nil {
		return fmt.Errorf("begin the snapshot: %w", err)
	}
	if _, err := s.snap.ExecContext(ctx, "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"); err != nil {
		return fmt.Errorf("begin the snapshot: %w", err)
	}
	var err error
	s.file, s.offset, err = binlogEnd(ctx, s.snap)
	return err
}

// binlogEnd reads where the server's binlog ends.
func binlogEnd(ctx context.Context, c *sql.Conn) (string, uint64, error) {
	rows, err := c.QueryContext(ctx, "SHOW MASTER STATUS")
	var me *driver.MySQLError
	if errors.As(err, &me) && me.Number == 1064 { // MySQL 8.4 has only the new name
		rows, err = c.QueryContext(ctx, "SHOW BINARY LOG STATUS")
	}
	if err != nil {
		return "", 0, fmt.Errorf("read the binlog position: %w", err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return "", 0, fmt.Errorf("read the binlog position: %w", err)
	}
	if !rows.Next() {
		return "", 0, errors.New("the server reports no binlog position: is log_bin set?")
	}
	vals := make([]sql.RawBytes, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil || len(vals) < 2 {
		return "", 0, fmt.Errorf("read the binlog position: %w", err)
	}
	var pos uint64
	if _, err := fmt.Sscan(string(vals[1]), &pos); err != nil {
		return "", 0, fmt.Errorf("read the binlog position %q: %w", vals[1], err)
	}
	return string(vals[0]), pos, nil
}

func (s *myStore) page(ctx context.Context, after string, n int) ([]string, error) {
	q := fmt.Sprintf("SELECT %[1]s FROM %[2]s ORDER BY %[1]s LIMIT ?", s.id, s.table)
	args := []any{n}
	if after != "" {
		q = fmt.Sprintf("SELECT %[1]s FROM %[2]s WHERE %[1]s > ? ORDER BY %[1]s LIMIT ?", s.id, s.table)
		args = []any{after, n}
	}
	rows, err := s.snap.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read outbox ids: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("read outbox ids: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read outbox ids: %w", err)
	}
	return ids, nil
}

func (s *myStore) captured(context.Context) (bool, error) {
	stored, ok := s.position(s.connector)
	if !ok {
		return false, nil
	}
	file, off, ok := mysql.Captured(stored)
	if !ok {
		return false, nil // still in its snapshot
	}
	c, err := mysql.CompareBinlog(file, off, s.file, s.offset)
	if err != nil {
		return false, fmt.Errorf("compare positions: %w", err)
	}
	return c >= 0, nil
}

func (s *myStore) remove(ctx context.Context, ids []string) (int64, error) {
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	q := fmt.Sprintf("DELETE FROM %s WHERE %s IN (?%s)", s.table, s.id, strings.Repeat(",?", len(ids)-1))
	res, err := s.db.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, fmt.Errorf("delete captured rows: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("delete captured rows: %w", err)
	}
	return n, nil
}

func (s *myStore) left(ctx context.Context) (int64, string, error) {
	var n int64
	var least sql.NullString
	if err := s.db.QueryRowContext(ctx, fmt.Sprintf("SELECT count(*), min(%s) FROM %s", s.id, s.table)).Scan(&n, &least); err != nil {
		return 0, "", fmt.Errorf("count outbox rows: %w", err)
	}
	return n, least.String, nil
}

func (s *myStore) fence() string { return fmt.Sprintf("%s:%d", s.file, s.offset) }

func (s *myStore) close() {
	if s.snap != nil {
		_, _ = s.snap.ExecContext(context.Background(), "ROLLBACK") // read-only: nothing to keep
		_ = s.snap.Close()
	}
	_ = s.db.Close()
}

func myQuote(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }
