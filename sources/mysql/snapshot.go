package mysql

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/eddy-cdc/eddy/connect"
)

// snapshot is the initial snapshot in progress: one consistent-snapshot
// transaction, each table read in primary-key order a chunk at a time
// (the next chunk starts after the last key read), so memory stays
// bounded by the chunk size and no lock is held on the tables.
type snapshot struct {
	epoch   uint64
	at      coords // the binlog position the snapshot is consistent with
	table   int    // index into Source.order
	first   *client.Stmt
	next    *client.Stmt
	lastKey []any // the key of the last row read, for the next chunk
	offset  int   // keyless tables: rows read
	row     uint64
	held    *connect.Record // the newest read, held back to mark the last one
	started time.Time
	// retake says an earlier snapshot (or stream) of these tables may be in
	// the log: each table's reads are then preceded by a truncate event, so
	// a consumer drops rows that vanished in between.
	retake bool
}

// push emits the held record and holds rec in its place.
func (sn *snapshot) push(rec connect.Record, out *[]connect.Record) {
	if sn.held != nil {
		*out = append(*out, *sn.held)
	}
	sn.held = &rec
}

func (sn *snapshot) closeTable() {
	for _, st := range []*client.Stmt{sn.first, sn.next} {
		if st != nil {
			st.Close()
		}
	}
	sn.first, sn.next, sn.lastKey, sn.offset = nil, nil, nil, 0
}

// startSnapshot opens the snapshot transaction and learns the binlog
// position it is consistent with. MariaDB reports it for a consistent
// snapshot (binlog_snapshot_file and _position), with no lock at all;
// MySQL has no such status, so a FLUSH TABLES WITH READ LOCK is held
// just while the transaction starts and the position is read.
func (s *Source) startSnapshot(ctx context.Context, retake bool) error {
	if _, err := s.conn.Execute("set session transaction isolation level repeatable read"); err != nil {
		return fmt.Errorf("begin snapshot: %w", err)
	}
	var at coords
	var err error
	if s.cfg.flavor == "mariadb" {
		if _, err := s.conn.Execute("start transaction with consistent snapshot, read only"); err != nil {
			return fmt.Errorf("begin snapshot: %w", err)
		}
		r, err := s.query("show status like 'binlog_snapshot_%'")
		if err != nil {
			return fmt.Errorf("read the snapshot's binlog position: %w", err)
		}
		for i := range r.RowNumber() {
			k, _ := r.GetString(i, 0)
			v, _ := r.GetString(i, 1)
			switch strings.ToLower(k) {
			case "binlog_snapshot_file":
				at.file = v
			case "binlog_snapshot_position":
				if at.pos, err = parseUint(v); err != nil {
					return fmt.Errorf("binlog_snapshot_position %q: %w", v, err)
				}
			}
		}
		if at.file == "" {
			return fmt.Errorf("%w: the server reports no binlog_snapshot_file: is log_bin set?", ErrPreflight)
		}
		if at.gtid, err = s.gtidsAt(at.file, at.pos); err != nil {
			return err
		}
	} else {
		if _, err := s.conn.Execute("flush tables with read lock"); err != nil {
			if errCode(err) == erAccessDenied {
				return fmt.Errorf("%w: a MySQL snapshot takes a short FLUSH TABLES WITH READ LOCK: GRANT RELOAD ON *.* TO %s", ErrPreflight, s.cfg.user)
			}
			return fmt.Errorf("flush tables with read lock: %w", err)
		}
		_, err = s.conn.Execute("start transaction with consistent snapshot, read only")
		if err == nil {
			at, err = s.serverPosition()
		}
		if _, uerr := s.conn.Execute("unlock tables"); uerr != nil && err == nil {
			err = fmt.Errorf("unlock tables: %w", uerr)
		}
		if err != nil {
			return fmt.Errorf("begin snapshot: %w", err)
		}
	}
	if retake {
		s.gen++ // sorts after all the log holds, as the stream before it did not
	}
	if err := s.baselineAt(ctx, snapshotPos(s.gen, 0, 0, 0, at)); err != nil {
		return err
	}
	s.snap = &snapshot{epoch: uint64(time.Now().UnixNano()), at: at, started: time.Now(), retake: retake}
	s.log.Info("snapshot started", "binlog", at.String(), "tables", len(s.order))
	return nil
}

// pollSnapshot reads the next chunk. After the last table it marks the
// final read "last", ends the transaction and starts streaming from the
// snapshot's binlog position.
func (s *Source) pollSnapshot(ctx context.Context) ([]connect.Record, error) {
	sn := s.snap
	var out []connect.Record
	for len(out) < s.cfg.batch {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if sn.table == len(s.order) {
			return s.endSnapshot(ctx, out)
		}
		t := s.order[sn.table]
		if sn.first == nil {
			if err := s.openTable(t, &out); err != nil {
				return nil, err
			}
		}
		n, err := s.readChunk(t, &out)
		if err != nil {
			return nil, fmt.Errorf("snapshot %s: %w", t.full(), err)
		}
		if n < s.cfg.chunk {
			sn.closeTable()
			sn.table++
		}
	}
	return out, nil
}

func (s *Source) endSnapshot(ctx context.Context, out []connect.Record) ([]connect.Record, error) {
	sn := s.snap
	if sn.held != nil {
		sn.held.Position = snapshotEnd(sn.held.Position)
		sn.held.Value.(map[string]any)["source"].(map[string]any)["snapshot"] = "last"
		out = append(out, *sn.held)
	}
	if _, err := s.conn.Execute("commit"); err != nil {
		return nil, fmt.Errorf("end snapshot: %w", err)
	}
	s.log.Info("snapshot done", "took", time.Since(sn.started).Round(time.Millisecond))
	s.snap = nil
	if s.cfg.snapshot == SnapshotInitialOnly {
		s.done = true
		return out, nil
	}
	if len(out) == 0 {
		// Nothing was read at all: a marker stores the snapshot as done,
		// so a restart streams from its position rather than taking it
		// again.
		out = append(out, connect.Record{Position: snapshotEnd(snapshotPos(s.gen, sn.epoch, 0, 0, sn.at)), Timestamp: time.Now()})
	}
	return out, s.startStream(ctx, sn.at, nil)
}

// openTable prepares a table's chunk statements, after a truncate event
// when the snapshot is taken again.
func (s *Source) openTable(t *table, out *[]connect.Record) error {
	sn := s.snap
	cols := make([]string, len(t.cols))
	for i, c := range t.cols {
		cols[i] = quoteIdent(c.name)
	}
	base := fmt.Sprintf("select %s from %s", strings.Join(cols, ", "), quoteTable(t.db, t.name))
	var first, next string
	if t.hasPrimaryKey() {
		order := make([]string, len(t.keyOrder))
		var conds []string
		for i, k := range t.keyOrder {
			order[i] = quoteIdent(t.cols[k].name)
			// (k1, k2) > (?, ?) as k1 > ? or (k1 = ? and k2 > ?): the form
			// every server turns into a range of the key.
			var and []string
			for _, p := range t.keyOrder[:i] {
				and = append(and, quoteIdent(t.cols[p].name)+" = ?")
			}
			and = append(and, quoteIdent(t.cols[k].name)+" > ?")
			conds = append(conds, "("+strings.Join(and, " and ")+")")
		}
		first = fmt.Sprintf("%s order by %s limit %d", base, strings.Join(order, ", "), s.cfg.chunk)
		next = fmt.Sprintf("%s where %s order by %s limit %d", base, strings.Join(conds, " or "), strings.Join(order, ", "), s.cfg.chunk)
	} else {
		// No primary key (no_primary_key: all_columns): the snapshot's
		// view does not change, so chunks by offset see each row once.
		first = fmt.Sprintf("%s limit %d", base, s.cfg.chunk)
		next = fmt.Sprintf("%s limit %d offset ?", base, s.cfg.chunk)
	}
	var err error
	if sn.first, err = s.conn.Prepare(first); err != nil {
		return fmt.Errorf("snapshot %s: %w", t.full(), err)
	}
	if sn.next, err = s.conn.Prepare(next); err != nil {
		sn.closeTable()
		return fmt.Errorf("snapshot %s: %w", t.full(), err)
	}
	sn.row = 1
	if sn.retake {
		now := time.Now()
		value := map[string]any{"before": nil, "after": nil, "op": "t", "ts_ms": now.UnixMilli(), "source": s.source(t, now, "true", sn.at, 0, "", 0)}
		sn.push(connect.Record{Topic: t.topic, Value: value, ValueSchema: t.valueSchema, Timestamp: now,
			Position: snapshotPos(s.gen, sn.epoch, uint32(t.index), 0, sn.at), Broadcast: true}, out)
	}
	return nil
}

// hasPrimaryKey says whether the table's key is its primary key (rather
// than all its columns, for a table without one).
func (t *table) hasPrimaryKey() bool { return !t.allKey }

// readChunk reads up to a chunk of rows of t into out (through the held
// record) and returns how many it read.
func (s *Source) readChunk(t *table, out *[]connect.Record) (int, error) {
	sn := s.snap
	var r *mysql.Result
	var err error
	switch {
	case sn.lastKey == nil && sn.offset == 0:
		r, err = sn.first.Execute()
	case t.hasPrimaryKey():
		var args []any
		for i := range t.keyOrder {
			args = append(args, sn.lastKey[:i+1]...)
		}
		r, err = sn.next.Execute(args...)
	default:
		r, err = sn.next.Execute(sn.offset)
	}
	if err != nil {
		return 0, err
	}
	defer r.Close()
	now := time.Now()
	n := 0
	for _, vals := range r.Values {
		row := make(map[string]any, len(t.cols))
		for i := range t.cols {
			c := &t.cols[i]
			if i >= len(vals) {
				return n, fmt.Errorf("a row of %d columns, want %d", len(vals), len(t.cols))
			}
			v, err := c.fromSQL(vals[i])
			if err != nil {
				return n, fmt.Errorf("%s: %w", c.name, err)
			}
			row[t.fields[i]] = v
		}
		pos := snapshotPos(s.gen, sn.epoch, uint32(t.index), sn.row, sn.at)
		sn.row++
		n++
		value := map[string]any{"before": nil, "after": row, "op": "r", "ts_ms": now.UnixMilli(), "source": s.source(t, now, "true", sn.at, 0, "", 0)}
		sn.push(connect.Record{Topic: t.topic, Key: t.key(row), KeySchema: t.keySchema, Value: value, ValueSchema: t.valueSchema, Timestamp: now, Position: pos}, out)
		if t.hasPrimaryKey() {
			sn.lastKey = sn.lastKey[:0]
			for _, k := range t.keyOrder {
				v := vals[k].Value()
				if b, ok := v.([]byte); ok {
					v = append([]byte(nil), b...) // the result's buffer is reused
				}
				sn.lastKey = append(sn.lastKey, v)
			}
		}
	}
	sn.offset += n
	return n, nil
}
