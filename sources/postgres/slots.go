package postgres

import (
	"context"
	"time"

	"github.com/eddy-cdc/eddy/connect"
	"github.com/eddy-cdc/eddy/internal/capture"
)

// Orphaned slots. A replication slot that nothing reads keeps all WAL
// after its position: the commonest way a CDC tool fills a primary's
// disk. Eddy's slots (named eddy_…, pgoutput, in this database) that no
// connector configured on this worker claims are orphans: each is
// reported once with the WAL it holds, and under orphan_slots: drop one
// inactive at two checks in a row (slot_check_interval apart) is
// dropped. Checks start half an interval after the stream, when every
// configured connector has been added, and run only while streaming (the
// snapshot's transaction owns the connection before that).

// slotWatch is the state of the orphan checks.
type slotWatch struct {
	next     time.Time
	retained []connect.Retained
	warned   map[string]bool
	inactive map[string]bool // orphans inactive at the last check
}

// Retained reports the WAL each of Eddy's slots in the database holds
// (connect.RetentionReporter), checking at most once a slot_check_interval.
func (s *Source) Retained() []connect.Retained {
	w := &s.slots
	if !s.streaming || s.conn == nil {
		return nil
	}
	now := time.Now()
	if w.next.IsZero() {
		w.next = now.Add(s.cfg.slotCheck / 2)
	}
	if now.Before(w.next) {
		return w.retained
	}
	w.next = now.Add(s.cfg.slotCheck)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.checkSlots(ctx); err != nil {
		s.log.Warn("could not check the replication slots", "err", err)
	}
	return w.retained
}

// claimed is every slot a configured connector reads.
func (s *Source) claimed() map[string]bool {
	out := map[string]bool{s.cfg.slot: true}
	if s.peers == nil {
		return out
	}
	for _, p := range s.peers() {
		if p.Plugin != "postgres-source" {
			continue
		}
		slot := p.Params.String("slot")
		if slot == "" {
			slot = "eddy_" + capture.AvroName(p.Name)
		}
		out[slot] = true
	}
	return out
}

func (s *Source) checkSlots(ctx context.Context) error {
	w := &s.slots
	rows, err := s.conn.Query(ctx, `select slot_name, active, coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0)::bigint
		from pg_replication_slots where database = current_database() and plugin = 'pgoutput' and (slot_name like 'eddy\_%' or slot_name = $1) order by 1`, s.cfg.slot)
	if err != nil {
		return err
	}
	type slot struct {
		name   string
		active bool
		bytes  int64
	}
	var all []slot
	for rows.Next() {
		var sl slot
		if err := rows.Scan(&sl.name, &sl.active, &sl.bytes); err != nil {
			rows.Close()
			return err
		}
		all = append(all, sl)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if w.warned == nil {
		w.warned, w.inactive = map[string]bool{}, map[string]bool{}
	}
	claimed := s.claimed()
	inactive := map[string]bool{}
	w.retained = w.retained[:0]
	for _, sl := range all {
		orphan := !claimed[sl.name]
		if orphan && !sl.active && w.inactive[sl.name] && s.cfg.orphanSlots == "drop" {
			if _, err := s.conn.Exec(ctx, "select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = $1 and not active", sl.name); err != nil {
				return err
			}
			s.log.Warn("dropped a replication slot no configured connector reads (orphan_slots: drop)", "slot", sl.name, "retained_bytes", sl.bytes)
			w.retained = append(w.retained, connect.Retained{Name: sl.name, Orphaned: true})
			continue
		}
		if orphan && !sl.active {
			inactive[sl.name] = true
		}
		if orphan && !w.warned[sl.name] {
			w.warned[sl.name] = true
			s.log.Warn("a replication slot of Eddy's that no configured connector reads retains WAL, which grows until the server's disk is full: "+
				"drop it (select pg_drop_replication_slot(...)), or set orphan_slots: drop", "slot", sl.name, "retained_bytes", sl.bytes, "active", sl.active)
		}
		w.retained = append(w.retained, connect.Retained{Name: sl.name, Bytes: sl.bytes, Orphaned: orphan})
	}
	w.inactive = inactive
	return nil
}
