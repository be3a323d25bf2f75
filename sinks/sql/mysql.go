package sql

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/hamba/avro/v2"

	"github.com/eddy-cdc/eddy/connect"
	"github.com/eddy-cdc/eddy/internal/avrobin"
	elog "github.com/eddy-cdc/eddy/log"
)

// MySQL is the mysql-sink plugin (MySQL and MariaDB). DDL commits
// implicitly in MySQL, so tables are created and evolved before the data
// transaction opens; a truncate is a DELETE inside it.
type MySQL struct {
	sinkBase
	addr, user, password, db string
	conn                     *client.Conn
	tables                   map[string]*targetTable
}

// NewMySQL builds the sink from validated params; dsn is
// mysql://user:password@host:port/database.
func NewMySQL(p connect.Params, env connect.Env) (connect.Sink, error) {
	u, err := url.Parse(p.String("dsn"))
	if err != nil || u.Scheme != "mysql" || u.Host == "" || strings.Trim(u.Path, "/") == "" {
		return nil, fmt.Errorf("dsn: want mysql://user:password@host:port/database")
	}
	pw, _ := u.User.Password()
	s := &MySQL{sinkBase: newBase(p, env, myRecordFault), addr: u.Host, user: u.User.Username(), password: pw, db: strings.Trim(u.Path, "/"), tables: map[string]*targetTable{}}
	if err := s.check(p); err != nil {
		return nil, err
	}
	return s, nil
}

func myIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// Open connects and makes sure eddy_offsets and eddy_truncates exist.
func (s *MySQL) Open(ctx context.Context) error {
	conn, err := client.ConnectWithContext(ctx, s.addr, s.user, s.password, s.db, 10*time.Second)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	s.conn = conn
	for _, q := range []string{
		"create table if not exists eddy_offsets (connector varchar(191) not null, topic varchar(191) not null, `partition` int not null, next_offset bigint not null, primary key (connector, topic, `partition`)) engine=InnoDB",
		"create table if not exists eddy_truncates (connector varchar(191) not null, target varchar(191) not null, position varbinary(64) not null, primary key (connector, target)) engine=InnoDB",
	} {
		if _, err := conn.Execute(q); err != nil {
			return fmt.Errorf("%s: %w", q[:40], err)
		}
	}
	res, err := conn.Execute("select target, position from eddy_truncates where connector = ?", s.connector)
	if err != nil {
		return fmt.Errorf("read eddy_truncates: %w", err)
	}
	for i := range res.RowNumber() {
		t, _ := res.GetString(i, 0)
		pos, _ := res.GetString(i, 1)
		s.truncated[t] = []byte(pos)
	}
	return nil
}

// Offsets reads where each partition resumes from eddy_offsets.
func (s *MySQL) Offsets(context.Context) (map[elog.TopicPartition]int64, error) {
	res, err := s.conn.Execute("select topic, `partition`, next_offset from eddy_offsets where connector = ?", s.connector)
	if err != nil {
		return nil, fmt.Errorf("read eddy_offsets: %w", err)
	}
	out := map[elog.TopicPartition]int64{}
	for i := range res.RowNumber() {
		topic, _ := res.GetString(i, 0)
		part, _ := res.GetInt(i, 1)
		next, _ := res.GetInt(i, 2)
		out[elog.TopicPartition{Topic: topic, Partition: int(part)}] = next
	}
	s.noteCommitted(out)
	return out, nil
}

// Close closes the connection.
func (s *MySQL) Close() error {
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn = nil
	return err
}

// Write applies the records and their offsets in one transaction; when
// that fails it halves the batch to find the record at fault (isolate).
func (s *MySQL) Write(ctx context.Context, recs []connect.Record) error {
	if err := s.conn.Ping(); err != nil { // the server went away: reconnect, the runtime retries us
		conn, cerr := client.ConnectWithContext(ctx, s.addr, s.user, s.password, s.db, 10*time.Second)
		if cerr != nil {
			return fmt.Errorf("reconnect: %w", cerr)
		}
		s.conn.Close()
		s.conn = conn
	}
	err := s.inBatches(recs, func(recs []connect.Record) error {
		return s.isolate(recs, 0, true, s.apply, func() bool { return s.conn.Ping() != nil })
	})
	if targetFault(err, myRecordFault) {
		// The target's fault: the retry connects anew (Write reconnects
		// when the connection does not answer).
		s.conn.Close()
	}
	return err
}

func (s *MySQL) apply(changes []change, offsets map[elog.TopicPartition]int64) error {
	// DDL first: it would commit an open transaction.
	tables := map[string]*targetTable{}
	for _, c := range changes {
		if c.truncate {
			continue
		}
		t, err := s.ensureTable(c)
		if err != nil {
			return err
		}
		tables[c.table] = t
	}
	if err := s.conn.Begin(); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	applied, err := s.applyInTx(changes, offsets, tables)
	if err != nil {
		s.conn.Rollback()
		return err
	}
	if err := s.conn.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	s.keepTruncates(applied)
	s.noteCommitted(offsets)
	return nil
}

func (s *MySQL) applyInTx(changes []change, offsets map[elog.TopicPartition]int64, tables map[string]*targetTable) (map[string][]byte, error) {
	applied := map[string][]byte{}
	for _, c := range changes {
		if !c.truncate {
			continue
		}
		if t := s.tables[c.table]; t != nil && len(t.cols) > 0 {
			if _, err := s.conn.Execute("delete from " + myIdent(c.table)); err != nil {
				return nil, fmt.Errorf("truncate %s: %w", c.table, err)
			}
		}
		if c.pos != nil {
			if _, err := s.conn.Execute("insert into eddy_truncates values (?, ?, ?) on duplicate key update position = values(position)", s.connector, c.table, c.pos); err != nil {
				return nil, err
			}
			applied[c.table] = c.pos
		}
	}
	groups := map[string][]change{}
	var order []string
	var partial []change
	for _, c := range changes {
		if c.truncate {
			continue
		}
		t := tables[c.table]
		if err := c.decodeRow(); err != nil { // mysql-sink reads values, not raw Avro
			return nil, fmt.Errorf("%s: %w", c.table, err)
		}
		if c.row == nil {
			if len(t.cols) == 0 || len(c.key) == 0 {
				continue
			}
			var conds []string
			var args []any
			for _, k := range sortedNames(c.key) {
				conds = append(conds, myIdent(k)+" = ?")
				v, err := myValue(c.key[k])
				if err != nil {
					return nil, err
				}
				args = append(args, v)
			}
			if _, err := s.conn.Execute("delete from "+myIdent(c.table)+" where "+strings.Join(conds, " and "), args...); err != nil {
				return nil, fmt.Errorf("delete from %s: %w", c.table, err)
			}
			continue
		}
		if len(c.unavailable) > 0 {
			partial = append(partial, c)
			continue
		}
		g := c.table + "\x00" + strings.Join(sortedNames(c.row), ",")
		if _, ok := groups[g]; !ok {
			order = append(order, g)
		}
		groups[g] = append(groups[g], c)
	}
	for _, g := range order {
		if err := s.upsert(groups[g]); err != nil {
			return nil, err
		}
	}
	for i := range partial {
		if err := s.updatePartial(&partial[i]); err != nil {
			return nil, err
		}
	}
	for tp, next := range offsets {
		if _, err := s.conn.Execute("insert into eddy_offsets values (?, ?, ?, ?) on duplicate key update next_offset = greatest(next_offset, values(next_offset))",
			s.connector, tp.Topic, tp.Partition, next); err != nil {
			return nil, fmt.Errorf("store offsets: %w", err)
		}
	}
	return applied, nil
}

// upsert writes rows with the same columns: a multi-row INSERT ... ON
// DUPLICATE KEY UPDATE.
func (s *MySQL) upsert(cs []change) error {
	cols := sortedNames(cs[0].row)
	quoted := quoteAll(cols, myIdent)
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ") + ")"
	perStmt := max(1, 30000/len(cols))
	for start := 0; start < len(cs); start += perStmt {
		chunk := cs[start:min(start+perStmt, len(cs))]
		args := make([]any, 0, len(chunk)*len(cols))
		rows := make([]string, len(chunk))
		for i, c := range chunk {
			rows[i] = row
			for _, col := range cols {
				v, err := myValue(c.row[col])
				if err != nil {
					return fmt.Errorf("%s.%s: %w", c.table, col, err)
				}
				args = append(args, v)
			}
		}
		q := "insert into " + myIdent(cs[0].table) + " (" + strings.Join(quoted, ", ") + ") values " + strings.Join(rows, ", ")
		if s.mode == modeUpsert && s.pkMode != keyNone {
			sets := make([]string, len(quoted))
			for i, c := range quoted {
				sets[i] = c + " = values(" + c + ")"
			}
			q += " on duplicate key update " + strings.Join(sets, ", ")
		}
		if _, err := s.conn.Execute(q, args...); err != nil {
			return fmt.Errorf("write %s: %w", cs[0].table, err)
		}
	}
	return nil
}

// updatePartial applies a change that lacks some columns' values as an
// update of the columns it carries, the rest left as the target has them.
// A key the target has no row of is ErrNoRowToKeep.
func (s *MySQL) updatePartial(c *change) error {
	key, err := s.partialKey(c)
	if err != nil {
		return err
	}
	var sets, conds []string
	var args, keyArgs []any
	for _, col := range partialColumns(c, key) {
		v, err := myValue(c.row[col])
		if err != nil {
			return fmt.Errorf("%s.%s: %w", c.table, col, err)
		}
		sets = append(sets, myIdent(col)+" = ?")
		args = append(args, v)
	}
	for _, col := range sortedNames(key) {
		v, err := myValue(key[col])
		if err != nil {
			return fmt.Errorf("%s.%s: %w", c.table, col, err)
		}
		conds = append(conds, myIdent(col)+" = ?")
		keyArgs = append(keyArgs, v)
	}
	where := " where " + strings.Join(conds, " and ")
	if len(sets) > 0 {
		res, err := s.conn.Execute("update "+myIdent(c.table)+" set "+strings.Join(sets, ", ")+where, append(args, keyArgs...)...)
		if err != nil {
			return fmt.Errorf("update %s: %w", c.table, err)
		}
		if res.AffectedRows > 0 {
			return nil
		}
	}
	// No row changed: MySQL counts a row whose values stay the same as
	// unaffected, so ask whether it is there.
	res, err := s.conn.Execute("select 1 from "+myIdent(c.table)+where+" limit 1", keyArgs...)
	if err != nil {
		return fmt.Errorf("update %s: %w", c.table, err)
	}
	if res.RowNumber() == 0 {
		return noRowToKeep(c, key)
	}
	return nil
}

// ensureTable creates or evolves a table (outside any transaction).
func (s *MySQL) ensureTable(c change) (*targetTable, error) {
	t := s.tables[c.table]
	if t == nil {
		res, err := s.conn.Execute("select column_name, column_type from information_schema.columns where table_schema = database() and table_name = ?", c.table)
		if err != nil {
			return nil, err
		}
		cols := map[string]string{}
		for i := range res.RowNumber() {
			n, _ := res.GetString(i, 0)
			typ, _ := res.GetString(i, 1)
			cols[n] = typ
		}
		if t, err = s.knownTable(s.tables, c, cols); err != nil {
			return nil, err
		}
	}
	if len(t.cols) == 0 && c.upsert() {
		if err := s.mayCreate(c); err != nil {
			return nil, err
		}
		isKey := map[string]bool{}
		for _, k := range t.pk {
			isKey[k] = true
		}
		var defs []string
		for _, f := range c.schema.Fields() {
			typ := myFieldType(f, isKey[f.Name()])
			t.cols[f.Name()] = typ
			def := myIdent(f.Name()) + " " + typ
			if isKey[f.Name()] {
				def += " not null"
			}
			defs = append(defs, def)
		}
		if len(t.pk) > 0 && s.pkMode != keyNone {
			defs = append(defs, "primary key ("+strings.Join(quoteAll(t.pk, myIdent), ", ")+")")
		}
		if _, err := s.conn.Execute("create table if not exists " + myIdent(c.table) + " (" + strings.Join(defs, ", ") + ") engine=InnoDB"); err != nil {
			delete(s.tables, c.table)
			return nil, fmt.Errorf("create table %s: %w", c.table, err)
		}
		s.log.Info("created table", "table", c.table)
	}
	if c.schema != nil && len(t.cols) > 0 && !t.fits[c.schema] {
		isKey := map[string]bool{}
		for _, k := range t.pk {
			isKey[k] = true
		}
		for _, f := range c.schema.Fields() {
			if cur, ok := t.cols[f.Name()]; ok {
				if err := s.addEnumLabels(c.table, t, f, cur, isKey[f.Name()]); err != nil {
					return nil, err
				}
				continue
			}
			if !s.autoEvolve {
				return nil, fmt.Errorf("table %s has no column %s (set auto_evolve: true to add it)", c.table, f.Name())
			}
			typ := myFieldType(f, false)
			if _, err := s.conn.Execute(fmt.Sprintf("alter table %s add column if not exists %s %s", myIdent(c.table), myIdent(f.Name()), typ)); err != nil {
				return nil, fmt.Errorf("add column %s.%s: %w", c.table, f.Name(), err)
			}
			t.cols[f.Name()] = typ
		}
		t.fits[c.schema] = true
	}
	return t, nil
}

// addEnumLabels gives an enum column the labels its source enum has gained
// (connect.PropPGEnum): MySQL and MariaDB take a new label only by ALTER
// TABLE ... MODIFY, which keeps the stored values. Without it, a row with
// the new label would be refused as the record's fault.
func (s *MySQL) addEnumLabels(table string, t *targetTable, f *avro.Field, current string, key bool) error {
	labels, ok := f.Prop(connect.PropPGEnum).([]any)
	if !ok || len(labels) == 0 || !strings.HasPrefix(strings.ToLower(current), "enum(") {
		return nil
	}
	want := myFromPg("", labels, key)
	norm := func(typ string) string { return strings.ReplaceAll(strings.ToLower(typ), ", ", ",") }
	if norm(want) == norm(current) {
		return nil
	}
	def := want
	if key {
		def += " not null"
	}
	if _, err := s.conn.Execute(fmt.Sprintf("alter table %s modify column %s %s", myIdent(table), myIdent(f.Name()), def)); err != nil {
		return fmt.Errorf("add the source's enum labels to %s.%s: %w", table, f.Name(), err)
	}
	t.cols[f.Name()] = want
	s.log.Info("enum column gained labels", "table", table, "column", f.Name(), "type", want)
	return nil
}

// myFieldType is the MySQL/MariaDB column type of a field: the nearest to
// its PostgreSQL source type when the field says it (connect.PropPGType;
// docs/sinks-sql.md has the table), else myType of its Avro type.
func myFieldType(f *avro.Field, key bool) string {
	if src, _ := f.Prop(connect.PropPGType).(string); src != "" {
		if typ := myFromPg(src, f.Prop(connect.PropPGEnum), key); typ != "" {
			return typ
		}
	}
	return myType(f.Type(), key)
}

// myFromPg maps a PostgreSQL type (as format_type writes it) to the
// nearest MySQL/MariaDB type that takes its values as the sink writes
// them; "" leaves it to the Avro type.
func myFromPg(pg string, enum any, key bool) string {
	if labels, ok := enum.([]any); ok && len(labels) > 0 {
		quoted := make([]string, len(labels))
		for i, l := range labels {
			quoted[i] = "'" + strings.ReplaceAll(strings.ReplaceAll(fmt.Sprint(l), `\`, `\\`), "'", "''") + "'"
		}
		return "enum(" + strings.Join(quoted, ", ") + ")"
	}
	if strings.HasSuffix(pg, "[]") {
		return "json"
	}
	t := parsePgType(pg)
	base, _, _ := strings.Cut(pg, "(")
	switch {
	case t.family == "int":
		return [4]string{"", "smallint", "int", "bigint"}[t.rank]
	case t.family == "float":
		return [3]string{"", "float", "double"}[t.rank]
	case t.family == "numeric" && t.n > 0 && t.n <= 65 && t.s <= 30:
		return fmt.Sprintf("decimal(%d,%d)", t.n, t.s)
	case t.family == "char" && t.char && t.n <= 255:
		return fmt.Sprintf("char(%d)", t.n)
	case t.family == "char" && t.n > 0 && (t.n <= 191 || !key && t.n <= 16383):
		return fmt.Sprintf("varchar(%d)", t.n)
	}
	switch base {
	case "boolean":
		return "boolean"
	case "date":
		return "date"
	case "timestamp without time zone", "timestamp with time zone":
		return "datetime(6)"
	case "time without time zone":
		return "time(6)"
	case "uuid":
		return "char(36)"
	case "json", "jsonb":
		if !key {
			return "json"
		}
	case "inet", "cidr":
		return "varchar(43)"
	case "macaddr", "macaddr8":
		return "varchar(23)"
	}
	return ""
}

// myType is the MySQL/MariaDB column type for an Avro type; key columns
// get bounded string types, which an index needs.
func myType(sc avro.Schema, key bool) string {
	pg := pgType(sc)
	switch {
	case strings.HasPrefix(pg, "numeric("):
		return "decimal(" + strings.TrimPrefix(pg, "numeric(")
	case pg == "text" && key:
		return "varchar(191)"
	case pg == "bytea" && key:
		return "varbinary(255)"
	}
	return map[string]string{
		"boolean": "boolean", "integer": "int", "bigint": "bigint", "real": "float", "double precision": "double",
		"text": "longtext", "bytea": "longblob", "date": "date", "time": "time(6)", "timestamptz": "datetime(6)",
		"timestamp": "datetime(6)", "uuid": "char(36)", "jsonb": "longtext",
	}[pg]
}

// myValue is a value as a MySQL statement parameter.
func myValue(v any) (any, error) {
	switch x := v.(type) {
	case nil, string, []byte, int64:
		return x, nil
	case int:
		return int64(x), nil
	case int32:
		return int64(x), nil
	case bool:
		if x {
			return int64(1), nil
		}
		return int64(0), nil
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64), nil
	case float32:
		return strconv.FormatFloat(float64(x), 'g', -1, 32), nil
	case time.Time:
		return x.UTC().Format("2006-01-02 15:04:05.999999"), nil
	}
	t, err := avrobin.PgText(v, "")
	if err != nil {
		return nil, err
	}
	return t, nil
}
