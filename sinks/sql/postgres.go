package sql

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/eddy-cdc/eddy/connect"
	elog "github.com/eddy-cdc/eddy/log"
)

// sinkBase is what both database sinks read from their params.
type sinkBase struct {
	connector  string
	template   string
	mode       string // upsert | insert
	pkMode     string // record_key | fields | none
	pkFields   []string
	deletes    bool
	autoCreate bool
	autoEvolve bool
	log        *slog.Logger
	names      map[tableKey]string // rendered table names
	// truncated is, per target table, the source position of the last
	// truncate applied (stored in eddy_truncates with it). A truncate is
	// in every partition of its topic; the first copy applies it, and the
	// records of other partitions from before it (by source position) are
	// superseded and skipped, so no partition brings back a row it wiped.
	truncated map[string][]byte
}

func newBase(p connect.Params, env connect.Env) sinkBase {
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return sinkBase{connector: env.Connector, template: p.String("table"), mode: p.String("mode"), pkMode: p.String("primary_key"),
		pkFields: p.Strings("primary_key_fields"), deletes: p.Bool("delete"), autoCreate: p.Bool("auto_create"), autoEvolve: p.Bool("auto_evolve"), log: log,
		names: map[tableKey]string{}, truncated: map[string][]byte{}}
}

// Postgres is the postgres-sink plugin.
type Postgres struct {
	sinkBase
	dsn    string
	conn   *pgx.Conn
	tables map[string]*targetTable
}

// targetTable is what the sink knows of a target table's columns.
type targetTable struct {
	cols map[string]string // name -> type
	pk   []string
}

// NewPostgres builds the sink from validated params.
func NewPostgres(p connect.Params, env connect.Env) (connect.Sink, error) {
	s := &Postgres{sinkBase: newBase(p, env), dsn: p.String("dsn"), tables: map[string]*targetTable{}}
	if s.pkMode == "fields" && len(s.pkFields) == 0 {
		return nil, fmt.Errorf("primary_key: fields needs primary_key_fields")
	}
	return s, nil
}

const offsetsDDL = `create table if not exists eddy_offsets (
	connector text not null, topic text not null, partition int not null, next_offset bigint not null,
	primary key (connector, topic, partition))`

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
	return out, rows.Err()
}

// Close closes the connection.
func (s *Postgres) Close() error {
	if s.conn == nil {
		return nil
	}
	return s.conn.Close(context.Background())
}

// Write applies the records and their offsets in one transaction; when
// that fails it goes record by record to find the one at fault.
func (s *Postgres) Write(ctx context.Context, recs []connect.Record) error {
	if s.conn.IsClosed() { // the server restarted or the network dropped: the runtime retries us
		conn, err := pgx.Connect(ctx, s.dsn)
		if err != nil {
			return fmt.Errorf("reconnect: %w", err)
		}
		s.conn = conn
	}
	changes, errAt, err := s.changes(recs)
	if err != nil && errAt == 0 {
		return &connect.RecordError{Index: 0, Err: err}
	}
	if err == nil {
		if err = s.apply(ctx, changes, offsetsOf(recs)); err == nil {
			return nil
		}
		if ctx.Err() != nil || s.conn.IsClosed() {
			return err // the connection, not a record: retried whole
		}
		s.log.Warn("batch failed; applying record by record to find the one at fault", "connector", s.connector, "err", err)
	}
	for i := range recs {
		cs, _, cerr := s.changes(recs[i : i+1])
		if cerr == nil {
			cerr = s.apply(ctx, cs, offsetsOf(recs[i:i+1]))
		}
		if cerr != nil {
			if ctx.Err() != nil || s.conn.IsClosed() {
				return cerr
			}
			return &connect.RecordError{Index: i, Err: cerr}
		}
	}
	return nil
}

// changes turns records into the last change of each key, in order of
// first appearance. errAt is the index of a record that cannot be read.
func (s *sinkBase) changes(recs []connect.Record) ([]change, int, error) {
	var out []change
	at := map[string]int{}
	truncated := map[string][]byte{} // as it will be once this batch applies
	for k, v := range s.truncated {
		truncated[k] = v
	}
	for i := range recs {
		c, ok, err := s.toChange(&recs[i], i)
		if err != nil {
			return nil, i, err
		}
		if !ok {
			continue
		}
		if tp := truncated[c.table]; tp != nil && c.pos != nil && bytes.Compare(c.pos, tp) <= 0 {
			continue // from before a truncate already applied: superseded
		}
		if c.truncate {
			// Everything of the table before it goes; the truncate leads.
			kept := out[:0]
			for _, o := range out {
				if o.table != c.table {
					kept = append(kept, o)
				}
			}
			out = append([]change{c}, kept...)
			at = map[string]int{}
			for j, o := range out {
				if !o.truncate {
					at[o.table+"\x00"+keyString(o.key)] = j
				}
			}
			truncated[c.table] = c.pos
			continue
		}
		k := c.table + "\x00" + keyString(c.key)
		if c.key == nil {
			k = fmt.Sprintf("%s\x00#%d", c.table, i) // keyless: every row stands
		}
		if j, seen := at[k]; seen {
			out[j] = c
			continue
		}
		at[k] = len(out)
		out = append(out, c)
	}
	return out, 0, nil
}

// keyString identifies a key's values, for collapsing changes per key.
func keyString(m map[string]any) string {
	if len(m) == 1 { // the common case: no sort, little formatting
		for n, v := range m {
			return n + "=" + valueString(v)
		}
	}
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		b.WriteString(n)
		b.WriteByte('=')
		b.WriteString(valueString(m[n]))
		b.WriteByte(0)
	}
	return b.String()
}

func valueString(v any) string {
	switch x := v.(type) {
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case string:
		return x
	}
	return fmt.Sprint(v)
}

func offsetsOf(recs []connect.Record) map[elog.TopicPartition]int64 {
	out := map[elog.TopicPartition]int64{}
	for _, r := range recs {
		tp := elog.TopicPartition{Topic: r.Topic, Partition: r.Partition}
		out[tp] = max(out[tp], r.Offset+1)
	}
	return out
}

// apply writes changes and offsets in one transaction.
func (s *Postgres) apply(ctx context.Context, changes []change, offsets map[elog.TopicPartition]int64) error {
	tx, err := s.conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	touched := map[string]*targetTable{}
	applied := map[string][]byte{}
	for _, c := range changes {
		if !c.truncate {
			continue
		}
		var exists bool
		if err := tx.QueryRow(ctx, "select to_regclass($1) is not null", pgIdent(c.table)).Scan(&exists); err != nil {
			return err
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
			return err
		}
		touched[c.table] = t
		if c.row == nil && len(t.cols) > 0 { // a delete where there is no table yet has nothing to do
			if err := s.delete(ctx, tx, c, t); err != nil {
				return err
			}
		}
	}
	// Upserts grouped by table and column set, many rows a statement.
	groups := map[string][]change{}
	var order []string
	for _, c := range changes {
		if c.row == nil {
			continue
		}
		g := c.table + "\x00" + strings.Join(sortedNames(c.row), ",")
		if _, ok := groups[g]; !ok {
			order = append(order, g)
		}
		groups[g] = append(groups[g], c)
	}
	for _, g := range order {
		if err := s.upsert(ctx, tx, groups[g], touched[groups[g][0].table]); err != nil {
			return err
		}
	}
	for tp, next := range offsets {
		if _, err := tx.Exec(ctx, `insert into eddy_offsets values ($1, $2, $3, $4)
			on conflict (connector, topic, partition) do update set next_offset = greatest(eddy_offsets.next_offset, excluded.next_offset)`,
			s.connector, tp.Topic, tp.Partition, next); err != nil {
			return fmt.Errorf("store offsets: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		for name := range touched {
			delete(s.tables, name) // DDL of the failed transaction did not happen
		}
		return err
	}
	for table, pos := range applied {
		s.truncated[table] = pos
	}
	return nil
}

func sortedNames(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for n := range m {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
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
			rows.Scan(&n, &typ)
			cols[n] = typ
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		t = &targetTable{cols: cols}
		t.pk = s.keyColumns(c)
		s.tables[c.table] = t
	}
	if len(t.cols) == 0 && c.row != nil {
		if err := s.mayCreate(c); err != nil {
			return nil, err
		}
		var defs []string
		for _, f := range c.schema.Fields() {
			typ := pgType(f.Type())
			t.cols[f.Name()] = typ
			defs = append(defs, pgIdent(f.Name())+" "+typ)
		}
		if len(t.pk) > 0 && s.pkMode != "none" {
			defs = append(defs, "primary key ("+strings.Join(quoteAll(t.pk, pgIdent), ", ")+")")
		}
		if _, err := tx.Exec(ctx, "create table "+pgIdent(c.table)+" ("+strings.Join(defs, ", ")+")"); err != nil {
			return nil, fmt.Errorf("create table %s: %w", c.table, err)
		}
		s.log.Info("created table", "table", c.table)
	}
	if c.schema != nil {
		for _, f := range c.schema.Fields() {
			if _, ok := t.cols[f.Name()]; ok {
				continue
			}
			if !s.autoEvolve {
				return nil, fmt.Errorf("table %s has no column %s (set auto_evolve: true to add it)", c.table, f.Name())
			}
			typ := pgType(f.Type())
			if _, err := tx.Exec(ctx, fmt.Sprintf("alter table %s add column if not exists %s %s", pgIdent(c.table), pgIdent(f.Name()), typ)); err != nil {
				return nil, fmt.Errorf("add column %s.%s: %w", c.table, f.Name(), err)
			}
			t.cols[f.Name()] = typ
			s.log.Info("added column", "table", c.table, "column", f.Name(), "type", typ)
		}
	}
	return t, nil
}

func (s *Postgres) delete(ctx context.Context, tx pgx.Tx, c change, t *targetTable) error {
	if len(c.key) == 0 {
		return nil
	}
	var conds []string
	var args []any
	for _, k := range sortedNames(c.key) {
		v, err := pgText(c.key[k], t.cols[k])
		if err != nil {
			return err
		}
		args = append(args, v)
		conds = append(conds, fmt.Sprintf("%s = $%d::%s", pgIdent(k), len(args), castType(t.cols[k])))
	}
	_, err := tx.Exec(ctx, "delete from "+pgIdent(c.table)+" where "+strings.Join(conds, " and "), args...)
	return err
}

// keyColumns are a new target table's primary-key columns: the record
// key's fields, sorted, or primary_key_fields.
func (s *sinkBase) keyColumns(c change) []string {
	if s.pkMode == "fields" {
		return s.pkFields
	}
	var pk []string
	for k := range c.key {
		pk = append(pk, k)
	}
	sort.Strings(pk)
	return pk
}

// mayCreate says whether a missing table may be created for c.
func (s *sinkBase) mayCreate(c change) error {
	if !s.autoCreate || c.schema == nil {
		return fmt.Errorf("table %s does not exist (set auto_create: true to create it)", c.table)
	}
	return nil
}

// pgIdent quotes a PostgreSQL identifier.
func pgIdent(s string) string { return pgx.Identifier{s}.Sanitize() }

// quoteAll quotes each identifier.
func quoteAll(names []string, quote func(string) string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = quote(n)
	}
	return out
}

// castType is the type a text parameter is cast to.
func castType(typ string) string {
	if typ == "" {
		return "text"
	}
	return typ
}

// copyThreshold is the number of rows from which a batch goes through
// COPY into a staging table rather than a multi-row INSERT.
const copyThreshold = 64

// upsert writes rows with the same columns: through COPY into a staging
// table and one INSERT ... SELECT ... ON CONFLICT DO UPDATE for large
// batches, else a multi-row INSERT.
func (s *Postgres) upsert(ctx context.Context, tx pgx.Tx, cs []change, t *targetTable) error {
	if len(cs) >= copyThreshold {
		return s.upsertCopy(ctx, tx, cs, t)
	}
	cols := sortedNames(cs[0].row)
	quoted := quoteAll(cols, pgIdent)
	perStmt := max(1, 30000/len(cols))
	for start := 0; start < len(cs); start += perStmt {
		chunk := cs[start:min(start+perStmt, len(cs))]
		var sb strings.Builder
		args := make([]any, 0, len(chunk)*len(cols))
		sb.WriteString("insert into " + pgIdent(cs[0].table) + " (" + strings.Join(quoted, ", ") + ") values ")
		for i, c := range chunk {
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteByte('(')
			for j, col := range cols {
				v, err := pgText(c.row[col], t.cols[col])
				if err != nil {
					return fmt.Errorf("%s.%s: %w", cs[0].table, col, err)
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
	if s.mode != "upsert" || len(t.pk) == 0 || s.pkMode == "none" {
		return ""
	}
	keys := quoteAll(t.pk, pgIdent)
	sets := make([]string, len(quoted))
	for i, c := range quoted {
		sets[i] = c + " = excluded." + c
	}
	return " on conflict (" + strings.Join(keys, ", ") + ") do update set " + strings.Join(sets, ", ")
}

// upsertCopy stages the rows with COPY (text format) in a temporary table
// that the transaction drops, then upserts them in one statement.
func (s *Postgres) upsertCopy(ctx context.Context, tx pgx.Tx, cs []change, t *targetTable) error {
	cols := sortedNames(cs[0].row)
	quoted := quoteAll(cols, pgIdent)
	target := pgIdent(cs[0].table)
	list := strings.Join(quoted, ", ")
	if _, err := tx.Exec(ctx, "create temp table eddy_stage on commit drop as select "+list+" from "+target+" with no data"); err != nil {
		return fmt.Errorf("stage %s: %w", cs[0].table, err)
	}
	var buf []byte
	for _, c := range cs {
		for j, col := range cols {
			if j > 0 {
				buf = append(buf, '\t')
			}
			v, err := pgText(c.row[col], t.cols[col])
			if err != nil {
				return fmt.Errorf("%s.%s: %w", cs[0].table, col, err)
			}
			if v == nil {
				buf = append(buf, `\N`...)
				continue
			}
			buf = appendCopyText(buf, v.(string))
		}
		buf = append(buf, '\n')
	}
	if _, err := tx.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(buf), "copy eddy_stage ("+list+") from stdin"); err != nil {
		return fmt.Errorf("copy into %s: %w", cs[0].table, err)
	}
	if _, err := tx.Exec(ctx, "insert into "+target+" ("+list+") select "+list+" from eddy_stage"+s.conflictClause(t, quoted)); err != nil {
		return fmt.Errorf("write %s: %w", cs[0].table, err)
	}
	_, err := tx.Exec(ctx, "drop table eddy_stage")
	return err
}

// appendCopyText escapes a value for COPY's text format.
func appendCopyText(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			dst = append(dst, '\\', '\\')
		case '\t':
			dst = append(dst, '\\', 't')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		default:
			dst = append(dst, c)
		}
	}
	return dst
}
