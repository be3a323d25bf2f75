package sql

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/eddy-cdc/eddy/connect"
	"github.com/eddy-cdc/eddy/internal/avrobin"
	elog "github.com/eddy-cdc/eddy/log"
)

// Postgres is the postgres-sink plugin.
type Postgres struct {
	sinkBase
	dsn    string
	conn   *pgx.Conn
	tables map[string]*targetTable
	// Caches: column lists by schema, compiled row renderers.
	schemaCols map[*avro.RecordSchema]columnSet
	renderers  map[rendererKey]rowRenderers
}

// NewPostgres builds the sink from validated params.
func NewPostgres(p connect.Params, env connect.Env) (connect.Sink, error) {
	if _, err := pgx.ParseConfig(p.String("dsn")); err != nil {
		return nil, fmt.Errorf("line %d: dsn: %w", p.Line("dsn"), err)
	}
	s := &Postgres{sinkBase: newBase(p, env, pgRecordFault), dsn: p.String("dsn"), tables: map[string]*targetTable{},
		schemaCols: map[*avro.RecordSchema]columnSet{}, renderers: map[rendererKey]rowRenderers{}}
	if err := s.check(p); err != nil {
		return nil, err
	}
	return s, nil
}

const offsetsDDL = `create table if not exists eddy_offsets (
	connector text not null, topic text not null, partition int not null, next_offset bigint not null,
	primary key (connector, topic, partition))`

// RawValues says the sink reads Avro envelopes from the log's bytes.
func (s *Postgres) RawValues() bool { return true }

// Open connects and makes sure eddy_offsets exists.
func (s *Postgres) Open(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, s.dsn)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	s.conn = conn
	if _, err := conn.Exec(ctx, offsetsDDL); err != nil {
		return fmt.Errorf("create eddy_offsets: %w", err)
	}
	if _, err := conn.Exec(ctx, truncatesDDL); err != nil {
		return fmt.Errorf("create eddy_truncates: %w", err)
	}
	rows, err := conn.Query(ctx, "select target, position from eddy_truncates where connector = $1", s.connector)
	if err != nil {
		return fmt.Errorf("read eddy_truncates: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var table string
		var pos []byte
		if err := rows.Scan(&table, &pos); err != nil {
			return err
		}
		s.truncated[table] = pos
	}
	return rows.Err()
}

const truncatesDDL = `create table if not exists eddy_truncates (
	connector text not null, target text not null, position bytea not null,
	primary key (connector, target))`

// Offsets reads where each partition resumes from eddy_offsets.
func (s *Postgres) Offsets(ctx context.Context) (map[elog.TopicPartition]int64, error) {
	rows, err := s.conn.Query(ctx, "select topic, partition, next_offset from eddy_offsets where connector = $1", s.connector)
	if err != nil {
		return nil, fmt.Errorf("read eddy_offsets: %w", err)
	}
	defer rows.Close()
	out := map[elog.TopicPartition]int64{}
	for rows.Next() {
		var tp elog.TopicPartition
		var next int64
		if err := rows.Scan(&tp.Topic, &tp.Partition, &next); err != nil {
			return nil, err
		}
		out[tp] = next
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	s.noteCommitted(out)
	return out, nil
}

// Close closes the connection.
func (s *Postgres) Close() error {
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close(context.Background())
	s.conn = nil
	return err
}

// Write applies the records and their offsets in one transaction; when
// that fails it halves the batch to find the record at fault (isolate).
func (s *Postgres) Write(ctx context.Context, recs []connect.Record) error {
	if s.conn.IsClosed() { // the server restarted or the network dropped: the runtime retries us
		conn, err := pgx.Connect(ctx, s.dsn)
		if err != nil {
			return fmt.Errorf("reconnect: %w", err)
		}
		s.conn = conn
	}
	gone := func() bool { return ctx.Err() != nil || s.conn.IsClosed() }
	err := s.inBatches(recs, func(recs []connect.Record) error {
		if len(recs) > 2*pipelinePart {
			err := s.applyPipelined(ctx, recs)
			if err == nil || gone() || targetFault(err, pgRecordFault) || connect.IsPermanent(err) {
				return err
			}
			s.log.Warn("batch failed; applying it again to find the record at fault", "records", len(recs), "err", err)
		}
		return s.isolate(recs, 0, true, func(cs []change, offsets map[elog.TopicPartition]int64) error { return s.apply(ctx, cs, offsets) }, gone)
	})
	if targetFault(err, pgRecordFault) {
		// The retry connects anew: a session opened read-only (a standby,
		// a database set read-only) stays so, and after a failover the
		// name may lead to another server.
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		s.conn.Close(cctx)
		cancel()
	}
	return err
}

// pipelinePart is how many records of a large batch applyPipelined takes
// at a time.
const pipelinePart = 16384

// applyPipelined applies a large batch in one transaction, part by part:
// while one part's rows stream into the server, the next part's changes
// are worked out. Parts apply in order, so the transaction ends as if it
// had applied the records one by one, as apply does; the truncates of a
// part are known to the next. A failure leaves the batch to isolate.
func (s *Postgres) applyPipelined(ctx context.Context, recs []connect.Record) error {
	type part struct {
		changes   []change
		truncated map[string][]byte
		err       error
	}
	build := func(set *changeSet, recs []connect.Record, truncated map[string][]byte) part {
		cs, tr, err := s.changesFrom(set, recs, truncated)
		return part{cs, tr, err}
	}
	next := build(&s.sets[0], recs[:pipelinePart], s.truncated)
	return s.transact(ctx, offsetsOf(recs), func(tx pgx.Tx, touched map[string]*targetTable, applied map[string][]byte) error {
		for start, n := 0, 0; start < len(recs); start, n = start+pipelinePart, n+1 {
			cur := next
			if cur.err != nil {
				return cur.err
			}
			var ahead chan part
			if end := start + pipelinePart; end < len(recs) {
				ahead = make(chan part, 1)
				go func() { ahead <- build(&s.sets[(n+1)%2], recs[end:min(end+pipelinePart, len(recs))], cur.truncated) }()
			}
			err := s.applyIn(ctx, tx, cur.changes, touched, applied)
			if ahead != nil {
				next = <-ahead // the part after has to be done with before this returns, error or not
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// apply writes changes and offsets in one transaction.
func (s *Postgres) apply(ctx context.Context, changes []change, offsets map[elog.TopicPartition]int64) error {
	return s.transact(ctx, offsets, func(tx pgx.Tx, touched map[string]*targetTable, applied map[string][]byte) error {
		return s.applyIn(ctx, tx, changes, touched, applied)
	})
}

// transact runs body in a transaction, stores the offsets after it, and
// commits. body notes the tables it touched and the truncates it applied:
// the sink forgets the former if the transaction fails (their DDL did not
// happen), and keeps the latter once it commits.
func (s *Postgres) transact(ctx context.Context, offsets map[elog.TopicPartition]int64, body func(tx pgx.Tx, touched map[string]*targetTable, applied map[string][]byte) error) error {
	tx, err := s.conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx)
	touched := map[string]*targetTable{}
	applied := map[string][]byte{}
	err = body(tx, touched, applied)
	if err == nil {
		err = s.storeOffsets(ctx, tx, offsets)
	}
	if err == nil {
		if err = tx.Commit(ctx); err != nil {
			err = fmt.Errorf("commit: %w", err)
		}
	}
	if err != nil {
		for name := range touched {
			delete(s.tables, name)
		}
		return err
	}
	s.keepTruncates(applied)
	s.noteCommitted(offsets)
	return nil
}

// storeOffsets records the next offsets in eddy_offsets, in the
// transaction of the rows.
func (s *Postgres) storeOffsets(ctx context.Context, tx pgx.Tx, offsets map[elog.TopicPartition]int64) error {
	for tp, next := range offsets {
		if _, err := tx.Exec(ctx, `insert into eddy_offsets values ($1, $2, $3, $4)
			on conflict (connector, topic, partition) do update set next_offset = greatest(eddy_offsets.next_offset, excluded.next_offset)`,
			s.connector, tp.Topic, tp.Partition, next); err != nil {
			return fmt.Errorf("store offsets: %w", err)
		}
	}
	return nil
}

// applyIn writes changes in tx: truncates first, then deletes, then
// upserts grouped by table and columns. It notes the tables it touched
// and the truncates it applied.
func (s *Postgres) applyIn(ctx context.Context, tx pgx.Tx, changes []change, touched map[string]*targetTable, applied map[string][]byte) error {
	for _, c := range changes {
		if !c.truncate {
			continue
		}
		var exists bool
		if err := tx.QueryRow(ctx, "select to_regclass($1) is not null", pgIdent(c.table)).Scan(&exists); err != nil {
			return fmt.Errorf("look up %s: %w", c.table, err)
		}
		if exists { // no table yet: nothing to empty, but the position still counts
			if _, err := tx.Exec(ctx, "truncate table "+pgIdent(c.table)); err != nil {
				return fmt.Errorf("truncate %s: %w", c.table, err)
			}
		}
		if c.pos != nil {
			if _, err := tx.Exec(ctx, `insert into eddy_truncates values ($1, $2, $3)
				on conflict (connector, target) do update set position = excluded.position`, s.connector, c.table, c.pos); err != nil {
				return fmt.Errorf("store truncate: %w", err)
			}
			applied[c.table] = c.pos
		}
	}
	for _, c := range changes {
		if c.truncate {
			continue
		}
		t, err := s.ensureTable(ctx, tx, c)
		if err != nil {
			delete(s.tables, c.table) // what it did rolls back with the transaction
			return err
		}
		touched[c.table] = t
		if !c.upsert() && len(t.cols) > 0 { // a delete where there is no table yet has nothing to do
			if err := s.delete(ctx, tx, c, t); err != nil {
				return err
			}
		}
	}
	// Upserts grouped by table and column set, many rows a statement.
	groups := map[groupKey]*upsertGroup{}
	var order []*upsertGroup
	var partial []*change
	for i := range changes {
		c := &changes[i]
		if !c.upsert() {
			continue
		}
		if len(c.unavailable) > 0 {
			partial = append(partial, c)
			continue
		}
		key, cols := s.columnsOf(c)
		g := groupKey{c.table, key}
		ug := groups[g]
		if ug == nil {
			ug = &upsertGroup{table: c.table, cols: cols}
			if len(changes) >= copyThreshold {
				ug.cs = make([]*change, 0, len(changes)) // the common case: one table, one schema
			}
			groups[g] = ug
			order = append(order, ug)
		}
		ug.cs = append(ug.cs, c)
	}
	for _, g := range order {
		if err := s.upsert(ctx, tx, g.cs, g.cols, touched[g.table]); err != nil {
			return err
		}
	}
	return s.updatePartial(ctx, tx, partial, touched)
}

// updatePartial applies changes that lack some columns' values as
// updates of the columns they carry, the rest left as the target has
// them; all in one round trip. A key the target has no row of is
// ErrNoRowToKeep: an insert would have to write placeholders.
func (s *Postgres) updatePartial(ctx context.Context, tx pgx.Tx, cs []*change, touched map[string]*targetTable) error {
	if len(cs) == 0 {
		return nil
	}
	var b pgx.Batch
	keys := make([]map[string]any, len(cs))
	for i, c := range cs {
		if err := c.decodeRow(); err != nil {
			return fmt.Errorf("%s: %w", c.table, err)
		}
		key, err := s.partialKey(c)
		if err != nil {
			return err
		}
		keys[i] = key
		t := touched[c.table]
		var sets, conds []string
		var args []any
		param := func(col string, v any) (string, error) {
			txt, err := avrobin.PgText(v, t.cols[col])
			if err != nil {
				return "", fmt.Errorf("%s.%s: %w", c.table, col, err)
			}
			args = append(args, txt)
			return fmt.Sprintf("%s = $%d::%s", pgIdent(col), len(args), castType(t.cols[col])), nil
		}
		for _, col := range partialColumns(c, key) {
			set, err := param(col, c.row[col])
			if err != nil {
				return err
			}
			sets = append(sets, set)
		}
		for _, col := range sortedNames(key) {
			cond, err := param(col, key[col])
			if err != nil {
				return err
			}
			conds = append(conds, cond)
		}
		if len(sets) == 0 { // nothing it carries but the key: the row must still be there
			sets = append(sets, pgIdent(sortedNames(key)[0])+" = "+pgIdent(sortedNames(key)[0]))
		}
		b.Queue("update "+pgIdent(c.table)+" set "+strings.Join(sets, ", ")+" where "+strings.Join(conds, " and "), args...)
	}
	br := tx.SendBatch(ctx, &b)
	defer br.Close()
	for i, c := range cs {
		tag, err := br.Exec()
		if err != nil {
			return fmt.Errorf("update %s: %w", c.table, err)
		}
		if tag.RowsAffected() == 0 {
			return noRowToKeep(c, keys[i])
		}
	}
	return br.Close()
}

// ensureTable creates the target table, or adds the columns it lacks,
// as auto_create and auto_evolve allow.
func (s *Postgres) ensureTable(ctx context.Context, tx pgx.Tx, c change) (*targetTable, error) {
	t := s.tables[c.table]
	if t == nil {
		rows, err := tx.Query(ctx, `select a.attname, format_type(a.atttypid, a.atttypmod) from pg_attribute a
			where a.attrelid = to_regclass($1) and a.attnum > 0 and not a.attisdropped`, pgIdent(c.table))
		if err != nil {
			return nil, err
		}
		cols := map[string]string{}
		for rows.Next() {
			var n, typ string
			if err := rows.Scan(&n, &typ); err != nil {
				rows.Close()
				return nil, err
			}
			cols[n] = typ
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		if t, err = s.knownTable(s.tables, c, cols); err != nil {
			return nil, err
		}
	}
	if len(t.cols) == 0 && c.upsert() {
		if err := s.mayCreate(c); err != nil {
			return nil, err
		}
		var defs []string
		cols := map[string]string{}
		for _, f := range c.schema.Fields() {
			typ, err := s.columnType(ctx, tx, f)
			if err != nil {
				return nil, fmt.Errorf("create table %s: %w", c.table, err)
			}
			cols[f.Name()] = typ
			defs = append(defs, pgIdent(f.Name())+" "+typ)
		}
		if len(t.pk) > 0 && s.pkMode != keyNone {
			defs = append(defs, "primary key ("+strings.Join(quoteAll(t.pk, pgIdent), ", ")+")")
		}
		if _, err := tx.Exec(ctx, "create table "+pgIdent(c.table)+" ("+strings.Join(defs, ", ")+")"); err != nil {
			return nil, fmt.Errorf("create table %s: %w", c.table, err)
		}
		t.cols = cols
		s.log.Info("created table", "table", c.table)
	}
	if c.schema != nil && !t.fits[c.schema] {
		for _, f := range c.schema.Fields() {
			if _, ok := t.cols[f.Name()]; ok {
				if err := s.evolveColumn(ctx, tx, c.table, t, f); err != nil {
					return nil, err
				}
				continue
			}
			if !s.autoEvolve {
				return nil, fmt.Errorf("table %s has no column %s (set auto_evolve: true to add it)", c.table, f.Name())
			}
			typ, err := s.columnType(ctx, tx, f)
			if err != nil {
				return nil, fmt.Errorf("add column %s.%s: %w", c.table, f.Name(), err)
			}
			if _, err := tx.Exec(ctx, fmt.Sprintf("alter table %s add column if not exists %s %s", pgIdent(c.table), pgIdent(f.Name()), typ)); err != nil {
				return nil, fmt.Errorf("add column %s.%s: %w", c.table, f.Name(), err)
			}
			t.cols[f.Name()] = typ
			s.log.Info("added column", "table", c.table, "column", f.Name(), "type", typ)
		}
		if len(t.fits) >= 1000 {
			clear(t.fits)
		}
		t.fits[c.schema] = true
	}
	return t, nil
}

// columnType is the type of a column the sink creates: the source's
// (connect.PropPGType, from a PostgreSQL source) when the target knows
// it, or when the field says how to make it (an enum's labels, a domain's
// definition: created here, in the transaction); else the mapping of the
// field's Avro type (pgType).
func (s *Postgres) columnType(ctx context.Context, tx pgx.Tx, f *avro.Field) (string, error) {
	src, _ := f.Prop(connect.PropPGType).(string)
	if src == "" {
		return pgType(f.Type()), nil
	}
	var known bool
	if err := tx.QueryRow(ctx, "select to_regtype($1) is not null", src).Scan(&known); err != nil {
		return "", fmt.Errorf("look up type %s: %w", src, err)
	}
	if known {
		return src, nil
	}
	var ddl string
	if labels, ok := f.Prop(connect.PropPGEnum).([]any); ok {
		quoted := make([]string, len(labels))
		for i, l := range labels {
			quoted[i] = "'" + strings.ReplaceAll(fmt.Sprint(l), "'", "''") + "'"
		}
		ddl = "create type " + src + " as enum (" + strings.Join(quoted, ", ") + ")"
	} else if def, ok := f.Prop(connect.PropPGDomain).(string); ok && def != "" {
		ddl = "create domain " + src + " as " + def
	}
	if ddl == "" {
		// A type of the source's own (an extension's, a composite) the
		// target lacks: the Avro type's mapping keeps the value.
		return pgType(f.Type()), nil
	}
	if _, err := tx.Exec(ctx, ddl); err != nil {
		return "", fmt.Errorf("create type %s: %w", src, err)
	}
	s.log.Info("created type", "type", src)
	return src, nil
}

func (s *Postgres) delete(ctx context.Context, tx pgx.Tx, c change, t *targetTable) error {
	if len(c.key) == 0 {
		return nil
	}
	var conds []string
	var args []any
	for _, k := range sortedNames(c.key) {
		v, err := avrobin.PgText(c.key[k], t.cols[k])
		if err != nil {
			return err
		}
		args = append(args, v)
		conds = append(conds, fmt.Sprintf("%s = $%d::%s", pgIdent(k), len(args), castType(t.cols[k])))
	}
	_, err := tx.Exec(ctx, "delete from "+pgIdent(c.table)+" where "+strings.Join(conds, " and "), args...)
	return err
}

// pgIdent quotes a PostgreSQL identifier.
func pgIdent(s string) string { return pgx.Identifier{s}.Sanitize() }

// castType is the type a text parameter is cast to.
func castType(typ string) string {
	if typ == "" {
		return "text"
	}
	return typ
}

// copyThreshold is the number of rows from which a batch goes through
// COPY rather than a multi-row INSERT.
const copyThreshold = 64

// groupKey is a table and its columns' names joined: the upserts that
// share one go in one statement.
type groupKey struct{ table, cols string }

type upsertGroup struct {
	table string
	cols  []string
	cs    []*change
}

// columnSet is a column list and its names joined.
type columnSet struct {
	key   string
	names []string
}

// columnsOf names the columns of an upserted row, and joins them into a
// key: the after-image's fields in schema order for a raw row (kept per
// schema), the map's keys sorted otherwise.
func (s *Postgres) columnsOf(c *change) (string, []string) {
	if c.row == nil && c.raw != nil {
		cs, ok := s.schemaCols[c.schema]
		if !ok {
			names := make([]string, len(c.schema.Fields()))
			for i, f := range c.schema.Fields() {
				names[i] = f.Name()
			}
			cs = columnSet{strings.Join(names, ","), names}
			if len(s.schemaCols) >= 1000 {
				clear(s.schemaCols)
			}
			s.schemaCols[c.schema] = cs
		}
		return cs.key, cs.names
	}
	names := sortedNames(c.row)
	return strings.Join(names, ","), names
}

// upsert writes rows with the same columns: through COPY for large
// batches, else a multi-row INSERT ... ON CONFLICT.
func (s *Postgres) upsert(ctx context.Context, tx pgx.Tx, cs []*change, cols []string, t *targetTable) error {
	if len(cs) >= copyThreshold {
		return s.upsertCopy(ctx, tx, cs, cols, t)
	}
	return s.upsertValues(ctx, tx, cs, cols, t)
}

func (s *Postgres) upsertValues(ctx context.Context, tx pgx.Tx, cs []*change, cols []string, t *targetTable) error {
	quoted := quoteAll(cols, pgIdent)
	perStmt := max(1, 30000/len(cols))
	for start := 0; start < len(cs); start += perStmt {
		chunk := cs[start:min(start+perStmt, len(cs))]
		var sb strings.Builder
		args := make([]any, 0, len(chunk)*len(cols))
		sb.WriteString("insert into " + pgIdent(cs[0].table) + " (" + strings.Join(quoted, ", ") + ") values ")
		for i, c := range chunk {
			if err := c.decodeRow(); err != nil {
				return fmt.Errorf("%s: %w", c.table, err)
			}
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteByte('(')
			for j, col := range cols {
				v, err := avrobin.PgText(c.row[col], t.cols[col])
				if err != nil {
					return fmt.Errorf("%s.%s: %w", c.table, col, err)
				}
				args = append(args, v)
				if j > 0 {
					sb.WriteString(", ")
				}
				fmt.Fprintf(&sb, "$%d::%s", len(args), castType(t.cols[col]))
			}
			sb.WriteByte(')')
		}
		sb.WriteString(s.conflictClause(t, quoted))
		if _, err := tx.Exec(ctx, sb.String(), args...); err != nil {
			return fmt.Errorf("write %s: %w", cs[0].table, err)
		}
	}
	return nil
}

// conflictClause is the ON CONFLICT part of an upsert ("" for insert mode).
func (s *Postgres) conflictClause(t *targetTable, quoted []string) string {
	if s.mode != modeUpsert || len(t.pk) == 0 || s.pkMode == keyNone {
		return ""
	}
	keys := quoteAll(t.pk, pgIdent)
	sets := make([]string, len(quoted))
	for i, c := range quoted {
		sets[i] = c + " = excluded." + c
	}
	return " on conflict (" + strings.Join(keys, ", ") + ") do update set " + strings.Join(sets, ", ")
}

// upsertCopy writes many rows through COPY (text format).
//
// Rows whose last change in the batch created them (op c, or r from a
// snapshot) are almost never in the target yet: exactly-once delivery
// means the target holds only committed batches, and a snapshot taken
// again is preceded by a truncate. They are copied straight into the
// table, as fast as a plain COPY, under a savepoint. If one is there
// after all (the table was filled by someone else, say), the unique
// violation rolls the savepoint back and they join the other rows; the
// table then takes the safe path for a while (freshBackoff).
//
// The other rows are staged with COPY in a temporary table that the
// transaction drops, and upserted from it in one statement.
func (s *Postgres) upsertCopy(ctx context.Context, tx pgx.Tx, cs []*change, cols []string, t *targetTable) error {
	quoted := quoteAll(cols, pgIdent)
	target := pgIdent(cs[0].table)
	list := strings.Join(quoted, ", ")
	conflict := s.conflictClause(t, quoted)
	if conflict == "" { // insert mode, or no key: every row goes straight in
		return s.copyRows(ctx, tx, target, list, cols, cs, t)
	}
	var fresh, rest []*change
	if t.freshSkip > 0 {
		t.freshSkip--
		rest = cs
	} else {
		fresh = make([]*change, 0, len(cs))
		for _, c := range cs {
			if c.op == 'c' || c.op == 'r' {
				fresh = append(fresh, c)
			} else {
				rest = append(rest, c)
			}
		}
	}
	if len(fresh) > 0 {
		if _, err := tx.Exec(ctx, "savepoint eddy_fresh"); err != nil {
			return err
		}
		err := s.copyRows(ctx, tx, target, list, cols, fresh, t)
		var pgErr *pgconn.PgError
		switch {
		case err == nil:
			if _, err := tx.Exec(ctx, "release savepoint eddy_fresh"); err != nil {
				return err
			}
			t.freshBackoff = 0
		case errors.As(err, &pgErr) && pgErr.Code == "23505": // unique_violation
			if _, err := tx.Exec(ctx, "rollback to savepoint eddy_fresh"); err != nil {
				return err
			}
			rest = append(rest, fresh...)
			t.freshBackoff = min(max(1, 2*t.freshBackoff), 64)
			t.freshSkip = t.freshBackoff
		default:
			return err
		}
	}
	if len(rest) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, "create temp table eddy_stage on commit drop as select "+list+" from "+target+" with no data"); err != nil {
		return fmt.Errorf("stage %s: %w", cs[0].table, err)
	}
	if err := s.copyRows(ctx, tx, "eddy_stage", list, cols, rest, t); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, "insert into "+target+" ("+list+") select "+list+" from eddy_stage"+conflict); err != nil {
		return fmt.Errorf("write %s: %w", cs[0].table, err)
	}
	_, err := tx.Exec(ctx, "drop table eddy_stage")
	return err
}

// copyRows streams rows into a table with COPY; the rows are rendered as
// the connection sends them, so the server parses one part while the
// next is rendered.
func (s *Postgres) copyRows(ctx context.Context, tx pgx.Tx, table, list string, cols []string, cs []*change, t *targetTable) error {
	src := &copySource{rows: cs}
	sql := "copy " + table + " (" + list + ") from stdin"
	if rb := s.binaryRenderer(cs, t); rb != nil {
		var rd avrobin.Reader
		src.render = func(dst []byte, c *change) ([]byte, error) {
			out, err := rb.Append(&rd, dst, c.raw)
			if err != nil {
				return dst, fmt.Errorf("%s: %w", c.table, err)
			}
			return out, nil
		}
		src.buf, src.tail = append(src.buf, avrobin.CopyBinaryHeader...), []byte(avrobin.CopyBinaryTrailer)
		sql += " with (format binary)"
	} else {
		src.render = s.renderer(cs[0].schema, cols, t)
	}
	if _, err := tx.Conn().PgConn().CopyFrom(ctx, src, sql); err != nil {
		if src.err != nil {
			err = src.err // ours, not the server's echo of it
		}
		return fmt.Errorf("copy into %s: %w", cs[0].table, err)
	}
	return nil
}

// compiled returns the raw renderers of a schema for a table, compiling
// them the first time; either may be nil (the schema does not render that
// way).
func (s *Postgres) compiled(schema *avro.RecordSchema, t *targetTable) rowRenderers {
	k := rendererKey{schema, t}
	rr, ok := s.renderers[k]
	if !ok {
		rr.text, _ = avrobin.CompileCopyText(schema, t.cols)
		rr.binary, _ = avrobin.CompileCopyBinary(schema, t.cols)
		if len(s.renderers) >= 1000 {
			clear(s.renderers)
		}
		s.renderers[k] = rr
	}
	return rr
}

// binaryRenderer is the binary renderer of rows that are all raw with one
// schema whose every field has a binary form; nil otherwise.
func (s *Postgres) binaryRenderer(cs []*change, t *targetTable) avrobin.CopyBinary {
	schema := cs[0].schema
	if schema == nil {
		return nil
	}
	for _, c := range cs {
		if c.row != nil || c.raw == nil || c.schema != schema {
			return nil
		}
	}
	return s.compiled(schema, t).binary
}

// renderer returns how to write a row as a COPY text line: from the Avro
// bytes when the row is raw and its schema renders, else from the values.
func (s *Postgres) renderer(schema *avro.RecordSchema, cols []string, t *targetTable) func(dst []byte, c *change) ([]byte, error) {
	var rt avrobin.CopyText
	if schema != nil {
		rt = s.compiled(schema, t).text
	}
	var rd avrobin.Reader
	return func(dst []byte, c *change) ([]byte, error) {
		if c.row == nil && c.raw != nil && rt != nil && c.schema == schema {
			out, err := rt.Append(&rd, dst, c.raw)
			if err != nil {
				return dst, fmt.Errorf("%s: %w", c.table, err)
			}
			return out, nil
		}
		if err := c.decodeRow(); err != nil {
			return dst, fmt.Errorf("%s: %w", c.table, err)
		}
		for j, col := range cols {
			if j > 0 {
				dst = append(dst, '\t')
			}
			v, err := avrobin.PgText(c.row[col], t.cols[col])
			if err != nil {
				return dst, fmt.Errorf("%s.%s: %w", c.table, col, err)
			}
			if v == nil {
				dst = append(dst, `\N`...)
				continue
			}
			dst = avrobin.AppendCopyText(dst, v.(string))
		}
		return append(dst, '\n'), nil
	}
}

// rendererKey is what compiled row renderers depend on.
type rendererKey struct {
	schema *avro.RecordSchema
	t      *targetTable
}

// rowRenderers are a schema's compiled raw renderers for a table.
type rowRenderers struct {
	text   avrobin.CopyText
	binary avrobin.CopyBinary
}

// copySource renders rows into COPY data as pgconn reads it, about 64 KiB
// at a time; buf may start with a header, and tail follows the rows.
type copySource struct {
	rows   []*change
	next   int
	buf    []byte
	off    int
	tail   []byte
	render func(dst []byte, c *change) ([]byte, error)
	err    error
}

func (r *copySource) Read(p []byte) (int, error) {
	for r.off == len(r.buf) {
		if r.err != nil {
			return 0, r.err
		}
		if r.next == len(r.rows) {
			if r.tail == nil {
				return 0, io.EOF
			}
			r.buf, r.off, r.tail = r.tail, 0, nil
			break
		}
		r.buf, r.off = r.buf[:0], 0
		for r.next < len(r.rows) && len(r.buf) < 64<<10 {
			var err error
			if r.buf, err = r.render(r.buf, r.rows[r.next]); err != nil {
				r.err = err
				return 0, err
			}
			r.next++
		}
	}
	n := copy(p, r.buf[r.off:])
	r.off += n
	return n, nil
}
