package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/eddy-cdc/eddy/connect"
)

// snapshot is the initial snapshot in progress: one REPEATABLE READ
// transaction on the slot's exported snapshot, reading each table through
// a cursor so memory stays bounded by the chunk size.
type snapshot struct {
	epoch      uint64
	tx         pgx.Tx
	consistent pglogrepl.LSN
	table      int  // index into Source.order
	open       bool // the table's cursor is declared
	row        uint64
	held       *connect.Record // the newest read, held back to mark the last one
	started    time.Time
	// retake says an earlier snapshot (or stream) of these tables may be in
	// the log: each table's reads are then preceded by a truncate event, so
	// a consumer drops rows that vanished in between instead of keeping
	// them forever.
	retake bool
}

// push emits the held record and holds rec in its place.
func (sn *snapshot) push(rec connect.Record, out *[]connect.Record) {
	if sn.held != nil {
		*out = append(*out, *sn.held)
	}
	sn.held = &rec
}

// startSnapshot (re)creates the slot with an exported snapshot and opens
// the snapshot transaction on it. A snapshot a crash interrupted starts
// over under a new slot and a new epoch, so its reads sort after the old
// ones and none is skipped as already logged.
func (s *Source) startSnapshot(ctx context.Context, slot slotInfo, retake bool) error {
	if slot.exists {
		if err := pglogrepl.DropReplicationSlot(ctx, s.repl, s.cfg.slot, pglogrepl.DropReplicationSlotOptions{Wait: true}); err != nil {
			return fmt.Errorf("drop slot %s to take a new snapshot: %w", s.cfg.slot, err)
		}
	}
	res, err := pglogrepl.CreateReplicationSlot(ctx, s.repl, s.cfg.slot, "pgoutput", pglogrepl.CreateReplicationSlotOptions{SnapshotAction: "EXPORT_SNAPSHOT"})
	if err != nil {
		return fmt.Errorf("create slot %s: %w", s.cfg.slot, err)
	}
	lsn, err := pglogrepl.ParseLSN(res.ConsistentPoint)
	if err != nil {
		return err
	}
	tx, err := s.conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("begin snapshot: %w", err)
	}
	if _, err := tx.Exec(ctx, "set transaction snapshot '"+strings.ReplaceAll(res.SnapshotName, "'", "")+"'"); err != nil {
		tx.Rollback(ctx)
		return fmt.Errorf("use the slot's snapshot %s: %w", res.SnapshotName, err)
	}
	s.snap = &snapshot{epoch: uint64(time.Now().UnixNano()), tx: tx, consistent: lsn, started: time.Now(), retake: retake}
	s.log.Info("snapshot started", "slot", s.cfg.slot, "lsn", lsn, "tables", len(s.order))
	return nil
}

// pollSnapshot reads the next chunk. After the last table it marks the
// final read "last", ends the transaction and starts streaming from the
// slot's consistent point.
func (s *Source) pollSnapshot(ctx context.Context) ([]connect.Record, error) {
	sn := s.snap
	var out []connect.Record
	for len(out) < s.cfg.batch {
		if sn.table == len(s.order) {
			if sn.held != nil {
				sn.held.Position = append(sn.held.Position[:9:9], snapshotEndMark...)
				sn.held.Value.(map[string]any)["source"].(map[string]any)["snapshot"] = "last"
				out = append(out, *sn.held)
			}
			if err := sn.tx.Commit(ctx); err != nil {
				return nil, fmt.Errorf("end snapshot: %w", err)
			}
			s.log.Info("snapshot done", "took", time.Since(sn.started).Round(time.Millisecond))
			s.snap = nil
			if s.cfg.snapshot == SnapshotInitialOnly {
				s.done = true
				return out, nil
			}
			if err := s.startStream(ctx, sn.consistent, nil); err != nil {
				return out, err
			}
			if n := len(out); n > 0 {
				// The stream's idle test weighs what was emitted against
				// what is committed: the last read counts as emitted.
				s.emitted = out[n-1].Position
			}
			return out, nil
		}
		t := s.order[sn.table]
		if !sn.open {
			cols := make([]string, len(t.cols))
			for i, c := range t.cols {
				// The type's output function, as pgoutput uses: a ::text
				// cast differs for some types (char(n) loses its padding,
				// bool reads true, inet shows a /32).
				id := pgx.Identifier{c.name}.Sanitize()
				cols[i] = fmt.Sprintf("case when %s is null then null else format('%%s', %s) end", id, id)
			}
			// ONLY: an inheritance child is a table of its own, captured
			// (or not) as such; a partitioned table's rows are its
			// partitions', read through it.
			only := "only "
			if t.partitioned {
				only = ""
			}
			q := fmt.Sprintf("declare eddy_snapshot no scroll cursor for select %s from %s%s", strings.Join(cols, ", "), only, pgx.Identifier{t.schema, t.name}.Sanitize())
			if len(t.keyCols) > 0 {
				keys := make([]string, len(t.keyCols))
				for i, k := range t.keyCols {
					keys[i] = pgx.Identifier{t.cols[k].name}.Sanitize()
				}
				q += " order by " + strings.Join(keys, ", ")
			}
			if _, err := sn.tx.Exec(ctx, q); err != nil {
				return nil, fmt.Errorf("snapshot %s.%s: %w", t.schema, t.name, err)
			}
			sn.open, sn.row = true, 1
			if sn.retake {
				now := time.Now()
				value := map[string]any{"before": nil, "after": nil, "op": "t", "ts_ms": now.UnixMilli(), "source": s.source(t, now, "true", 0, 0)}
				sn.push(connect.Record{Topic: t.topic, Value: value, ValueSchema: t.valueSchema, Timestamp: now,
					Position: snapshotPos(sn.epoch, uint32(t.index), 0), Broadcast: true}, &out)
			}
		}
		n, err := s.readChunk(ctx, t, &out)
		if err != nil {
			return nil, fmt.Errorf("snapshot %s.%s: %w", t.schema, t.name, err)
		}
		if n < s.cfg.chunk {
			if _, err := sn.tx.Exec(ctx, "close eddy_snapshot"); err != nil {
				return nil, err
			}
			sn.open = false
			sn.table++
		}
	}
	return out, nil
}

// readChunk fetches up to a chunk of rows of t into out (through the
// held-back record) and returns how many it read.
func (s *Source) readChunk(ctx context.Context, t *table, out *[]connect.Record) (int, error) {
	sn := s.snap
	// Described anew each time: a FETCH's columns are its cursor's, and
	// every table's cursor has the same name, so a description cached by
	// the statement's text would be another table's.
	rows, err := sn.tx.Query(ctx, fmt.Sprintf("fetch forward %d from eddy_snapshot", s.cfg.chunk), pgx.QueryExecModeDescribeExec)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	vals := make([]*string, len(t.cols))
	dest := make([]any, len(t.cols))
	for i := range vals {
		dest[i] = &vals[i]
	}
	n := 0
	now := time.Now()
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return n, err
		}
		row, err := t.row(vals)
		if err != nil {
			return n, err
		}
		pos := snapshotPos(sn.epoch, uint32(t.index), sn.row)
		sn.row++
		n++
		value := map[string]any{"before": nil, "after": row, "op": "r", "ts_ms": now.UnixMilli(),
			"source": s.source(t, now, "true", 0, 0)}
		sn.push(connect.Record{Topic: t.topic, Key: t.key(row), KeySchema: t.keySchema, Value: value, ValueSchema: t.valueSchema, Timestamp: now, Position: pos}, out)
	}
	return n, rows.Err()
}
