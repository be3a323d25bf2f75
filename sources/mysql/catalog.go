package mysql

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/eddy-cdc/eddy/connect"
	"github.com/eddy-cdc/eddy/internal/capture"
)

// MySQL error codes the source tells apart.
const (
	erAccessDenied    = 1227 // ER_SPECIFIC_ACCESS_DENIED_ERROR
	erTableAccess     = 1142 // ER_TABLEACCESS_DENIED_ERROR
	erDBAccess        = 1044
	systemDatabaseSQL = "'mysql', 'information_schema', 'performance_schema', 'sys'"
)

func errCode(err error) uint16 {
	var me *mysql.MyError
	if errors.As(err, &me) {
		return me.Code
	}
	return 0
}

// query runs a statement and returns its result.
func (s *Source) query(q string, args ...any) (*mysql.Result, error) {
	r, err := s.conn.Execute(q, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", strings.Fields(q)[0]+" "+strings.Fields(q)[1], err)
	}
	return r, nil
}

// preflight checks what capture needs, each failure saying what to change.
func (s *Source) preflight(context.Context) error {
	// The global settings: the applications' sessions take theirs from them.
	r, err := s.query("select @@version, @@server_id, @@log_bin, @@global.binlog_format, @@global.binlog_row_image")
	if err != nil {
		return fmt.Errorf("read server settings: %w", err)
	}
	version, _ := r.GetString(0, 0)
	id, _ := r.GetUint(0, 1)
	logBin, _ := r.GetInt(0, 2)
	format, _ := r.GetString(0, 3)
	image, _ := r.GetString(0, 4)
	s.serverID = uint32(id)
	mariadb := strings.Contains(strings.ToLower(version), "mariadb")
	switch {
	case s.cfg.flavor == "":
		s.cfg.flavor = "mysql"
		if mariadb {
			s.cfg.flavor = "mariadb"
		}
	case (s.cfg.flavor == "mariadb") != mariadb:
		return fmt.Errorf("%w: flavor is %s but the server is %s: set flavor: %s, or leave it out to detect it", ErrPreflight, s.cfg.flavor, version, map[bool]string{true: "mariadb", false: "mysql"}[mariadb])
	}
	if logBin != 1 {
		return fmt.Errorf("%w: the server writes no binlog: set log_bin (such as log_bin = mysql-bin) and server_id in its configuration and restart it", ErrPreflight)
	}
	if !strings.EqualFold(format, "ROW") {
		return fmt.Errorf("%w: binlog_format is %s: set binlog_format = ROW (SET GLOBAL binlog_format = 'ROW', and in the configuration), as change capture reads rows, not statements", ErrPreflight, format)
	}
	if !strings.EqualFold(image, "FULL") {
		return fmt.Errorf("%w: binlog_row_image is %s: set binlog_row_image = FULL, so updates and deletes log every column", ErrPreflight, image)
	}
	meta := "absent (a server before MySQL 8.0.1 or MariaDB 10.5)"
	if r, err := s.query("select @@global.binlog_row_metadata"); err == nil {
		meta, _ = r.GetString(0, 0)
	}
	s.fullMeta = strings.EqualFold(meta, "FULL")
	switch {
	case !s.fullMeta && s.histFn == nil:
		return fmt.Errorf("%w: binlog_row_metadata is %s and this runtime keeps no schema history for the connector: set binlog_row_metadata = FULL (SET GLOBAL binlog_row_metadata = 'FULL', and in the configuration), so the binlog carries each table's columns", ErrPreflight, meta)
	case !s.fullMeta:
		s.log.Info("binlog_row_metadata is not FULL: rows are decoded with the connector's schema history, kept from its DDL statements; FULL makes the binlog carry the columns itself", "binlog_row_metadata", meta)
	}
	if s.cfg.flavor == "mysql" {
		g, err := s.query("select @@gtid_mode")
		if err != nil {
			return fmt.Errorf("read gtid_mode: %w", err)
		}
		if mode, _ := g.GetString(0, 0); !strings.EqualFold(mode, "ON") {
			return fmt.Errorf("%w: gtid_mode is %s: set gtid_mode = ON and enforce_gtid_consistency = ON, so positions carry GTIDs", ErrPreflight, mode)
		}
		s.gtidMode = true
	} else {
		s.gtidMode = true // MariaDB always writes GTIDs
	}
	if s.cfg.serverID == s.serverID {
		return fmt.Errorf("%w: server_id %d is the server's own: give the connector a server_id no server or replica uses", ErrPreflight, s.cfg.serverID)
	}
	s.checkExpiry()
	if err := s.checkGrants(); err != nil {
		return err
	}
	if err := s.checkReplicas(); err != nil {
		return err
	}
	return s.loadCollations()
}

// checkExpiry warns about binlog retention: a server that never expires
// its binlogs fills its disk; one that expires them within a day loses
// the position of a connector stopped over a weekend.
func (s *Source) checkExpiry() {
	r, err := s.conn.Execute("select @@binlog_expire_logs_seconds")
	if err != nil {
		return
	}
	secs, _ := r.GetInt(0, 0)
	switch {
	case secs == 0:
		s.log.Warn("the server never expires its binlogs (binlog_expire_logs_seconds = 0): they grow until its disk is full; set binlog_expire_logs_seconds (such as 604800, a week)")
	case secs < 86400:
		s.log.Warn("the server expires binlogs within a day: a connector stopped for longer loses its position (and stops, or takes a new snapshot under snapshot: when_needed)",
			"binlog_expire_logs_seconds", secs)
	}
}

// checkGrants looks for the replication rights in the user's grants. A
// right that comes through a role is not seen here; the server's own
// refusal then names it when streaming starts.
func (s *Source) checkGrants() error {
	r, err := s.query("show grants")
	if err != nil {
		return fmt.Errorf("read the user's grants: %w", err)
	}
	var all strings.Builder
	roles := false
	for i := range r.RowNumber() {
		g, _ := r.GetString(i, 0)
		up := strings.ToUpper(g)
		if on := strings.Index(up, " ON *.* TO "); on > 0 && strings.HasPrefix(up, "GRANT ") {
			all.WriteString(up[len("GRANT "):on] + ",")
		} else if !strings.Contains(up, " ON ") {
			roles = true
		}
	}
	have := all.String()
	if roles || strings.Contains(have, "ALL PRIVILEGES") {
		return nil
	}
	var missing []string
	if !strings.Contains(have, "REPLICATION SLAVE") && !strings.Contains(have, "REPLICATION REPLICA") {
		missing = append(missing, "REPLICATION SLAVE")
	}
	if !strings.Contains(have, "REPLICATION CLIENT") && !strings.Contains(have, "BINLOG MONITOR") && !strings.Contains(have, "SUPER") {
		missing = append(missing, "REPLICATION CLIENT")
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: user %s lacks %s: GRANT %s ON *.* TO %s", ErrPreflight, s.cfg.user, strings.Join(missing, " and "), strings.Join(missing, ", "), s.cfg.user)
	}
	return nil
}

// replicaHost is the host name the source registers with, so the
// replicas the server lists tell this connector's own (a connection a
// crash left) from another that uses its server_id.
func (s *Source) replicaHost() string { return "eddy-" + s.name }

// checkReplicas refuses a server_id another replica uses. Listing
// replicas needs a right the user may lack; then the server's own
// refusal, when streaming, says it.
func (s *Source) checkReplicas() error {
	r, err := s.conn.Execute("show slave hosts")
	if err != nil {
		return nil
	}
	for i := range r.RowNumber() {
		id, _ := r.GetUintByName(i, "Server_id")
		host, _ := r.GetStringByName(i, "Host")
		if uint32(id) == s.cfg.serverID && host != s.replicaHost() {
			return fmt.Errorf("%w: server_id %d is in use by another replica (host %q): give this connector a server_id of its own", ErrPreflight, id, host)
		}
	}
	return nil
}

// loadCollations maps collation ids to character sets: the binlog names a
// column's collation.
func (s *Source) loadCollations() error {
	r, err := s.query("select id, character_set_name, collation_name from information_schema.collations")
	if err != nil {
		return fmt.Errorf("read collations: %w", err)
	}
	s.collation = map[uint64]string{}
	s.ddl = &ddlEnv{flavor: s.cfg.flavor, collations: map[string]string{}, dbs: map[string]string{}}
	for i := range r.RowNumber() {
		id, _ := r.GetUint(i, 0)
		cs, _ := r.GetString(i, 1)
		name, _ := r.GetString(i, 2)
		s.collation[id] = cs
		s.ddl.collations[strings.ToLower(name)] = cs
	}
	srv, err := s.query("select @@global.character_set_server")
	if err != nil {
		return fmt.Errorf("read character_set_server: %w", err)
	}
	s.ddl.server, _ = srv.GetString(0, 0)
	dbs, err := s.query("select schema_name, default_character_set_name from information_schema.schemata")
	if err != nil {
		return fmt.Errorf("read databases: %w", err)
	}
	for i := range dbs.RowNumber() {
		name, _ := dbs.GetString(i, 0)
		cs, _ := dbs.GetString(i, 1)
		s.ddl.dbs[name] = cs
	}
	return nil
}

// validPattern checks a db.table pattern.
func validPattern(p string) error {
	if _, err := path.Match(p, ""); err != nil {
		return fmt.Errorf("pattern %q: %w", p, err)
	}
	return nil
}

// Captures says whether a connector's tables and exclude_tables params
// take in the table db.name.
func Captures(p connect.Params, full string) bool {
	if capture.Excluded(p.Strings("exclude_tables"), full) {
		return false
	}
	for _, pattern := range p.Strings("tables") {
		if capture.Match(pattern, full) {
			return true
		}
	}
	return false
}

// loadTables resolves the table patterns against information_schema and
// describes each table.
func (s *Source) loadTables(ctx context.Context) error {
	for _, p := range append(slices.Clone(s.cfg.tables), s.cfg.exclude...) {
		if err := validPattern(p); err != nil {
			return fmt.Errorf("%w: %v", ErrPreflight, err)
		}
	}
	r, err := s.query("select table_schema, table_name from information_schema.tables where table_type = 'BASE TABLE' and table_schema not in (" +
		systemDatabaseSQL + ") order by table_schema, table_name")
	if err != nil {
		return fmt.Errorf("list tables: %w", err)
	}
	var picked []string
	seen := map[string]bool{}
	for _, pattern := range s.cfg.tables {
		hit := false
		for i := range r.RowNumber() {
			db, _ := r.GetString(i, 0)
			name, _ := r.GetString(i, 1)
			full := db + "." + name
			if !capture.Match(pattern, full) || capture.Excluded(s.cfg.exclude, full) {
				continue
			}
			hit = true
			if !seen[full] {
				seen[full] = true
				picked = append(picked, full)
			}
		}
		if !hit && !strings.ContainsAny(pattern, "*?[") {
			return fmt.Errorf("%w: table %s does not exist, or user %s may not see it (GRANT SELECT ON %s TO %s)", ErrPreflight, pattern, s.cfg.user, pattern, s.cfg.user)
		}
	}
	if len(picked) == 0 {
		return fmt.Errorf("%w: no table matches %s", ErrPreflight, strings.Join(s.cfg.tables, ", "))
	}
	s.order, s.byName = nil, map[string]*table{}
	topics := map[string]string{}
	for _, full := range picked {
		db, name, _ := strings.Cut(full, ".")
		t := &table{db: db, name: name, index: len(s.order)}
		if err := s.describe(t); err != nil {
			return err
		}
		if other, ok := topics[t.topic]; ok {
			return fmt.Errorf("%w: tables %s and %s would share topic %s: exclude one of them", ErrPreflight, other, full, t.topic)
		}
		topics[t.topic] = full
		s.order = append(s.order, t)
		s.byName[full] = t
	}
	return nil
}

// describe reads a table's columns and primary key from
// information_schema, and checks the user may read it.
func (s *Source) describe(t *table) error {
	if _, err := s.conn.Execute(fmt.Sprintf("select 1 from %s limit 0", quoteTable(t.db, t.name))); err != nil {
		if c := errCode(err); c == erTableAccess || c == erDBAccess {
			return fmt.Errorf("%w: user %s may not SELECT from %s: GRANT SELECT ON %s TO %s", ErrPreflight, s.cfg.user, t.full(), t.full(), s.cfg.user)
		}
		return fmt.Errorf("read %s: %w", t.full(), err)
	}
	defs, err := s.describeDefs("c.table_schema = ? and c.table_name = ?", t.db, t.name)
	if err != nil {
		return err
	}
	d := defs[t.full()]
	if d == nil {
		return fmt.Errorf("%w: table %s has no columns user %s may see", ErrPreflight, t.full(), s.cfg.user)
	}
	return s.useDef(t, d)
}

// useDef gives a table the columns of a definition.
func (s *Source) useDef(t *table, d *tableDef) error {
	cols, order, err := s.keyedColumns(t, d)
	if err != nil {
		return err
	}
	t.keyOrder = order
	return t.setColumns(cols, s.cfg.prefix)
}

// keyedColumns are a definition's columns with their key, keyed on all of
// them when it has no primary key and no_primary_key allows it (which
// marks t allKey).
func (s *Source) keyedColumns(t *table, d *tableDef) ([]column, []int, error) {
	cols, order := d.withKey()
	if len(order) > 0 {
		return cols, order, nil
	}
	if s.cfg.noKey != "all_columns" {
		return nil, nil, fmt.Errorf("%w: table %s has no primary key: add one, or set no_primary_key: all_columns to key its events on every column", ErrPreflight, t.full())
	}
	if !t.allKey {
		s.log.Warn("table has no primary key: its events are keyed on all its columns, so a change of any column is a delete and a create of the key", "table", t.full())
	}
	t.allKey = true
	for i := range cols {
		cols[i].key = true
		order = append(order, i)
	}
	return cols, order, nil
}

// describeDefs reads the definitions of the tables where (over
// information_schema.columns c) holds.
func (s *Source) describeDefs(where string, args ...any) (map[string]*tableDef, error) {
	r, err := s.query(`select c.table_schema, c.table_name, c.column_name, c.data_type, c.column_type, c.is_nullable,
		coalesce(c.numeric_precision, 0), coalesce(c.numeric_scale, 0), coalesce(c.character_set_name, ''), coalesce(c.character_octet_length, 0),
		coalesce(t.table_collation, '')
		from information_schema.columns c join information_schema.tables t on t.table_schema = c.table_schema and t.table_name = c.table_name
		where t.table_type = 'BASE TABLE' and `+where+` order by c.table_schema, c.table_name, c.ordinal_position`, args...)
	if err != nil {
		return nil, fmt.Errorf("describe tables: %w", err)
	}
	defs := map[string]*tableDef{}
	for i := range r.RowNumber() {
		db, _ := r.GetString(i, 0)
		tname, _ := r.GetString(i, 1)
		name, _ := r.GetString(i, 2)
		dataType, _ := r.GetString(i, 3)
		colType, _ := r.GetString(i, 4)
		nullable, _ := r.GetString(i, 5)
		prec, _ := r.GetInt(i, 6)
		scale, _ := r.GetInt(i, 7)
		cs, _ := r.GetString(i, 8)
		octets, _ := r.GetInt(i, 9)
		coll, _ := r.GetString(i, 10)
		d := defs[db+"."+tname]
		if d == nil {
			d = &tableDef{db: db, name: tname, charset: s.ddl.collations[strings.ToLower(coll)]}
			defs[d.full()] = d
		}
		c, err := infoColumn(name, strings.ToLower(dataType), strings.ToLower(colType), int(prec), int(scale), cs, int(octets))
		if err != nil {
			return nil, fmt.Errorf("%w: %s.%s: %v", ErrPreflight, d.full(), name, err)
		}
		c.nullable = nullable == "YES"
		d.cols = append(d.cols, c)
	}
	pk, err := s.query(`select c.table_schema, c.table_name, c.column_name from information_schema.statistics c
		where c.index_name = 'PRIMARY' and `+where+` order by c.table_schema, c.table_name, c.seq_in_index`, args...)
	if err != nil {
		return nil, fmt.Errorf("read primary keys: %w", err)
	}
	for i := range pk.RowNumber() {
		db, _ := pk.GetString(i, 0)
		tname, _ := pk.GetString(i, 1)
		n, _ := pk.GetString(i, 2)
		if d := defs[db+"."+tname]; d != nil {
			d.key = append(d.key, n)
		}
	}
	return defs, nil
}

// quoteTable quotes db.name for SQL.
func quoteTable(db, name string) string { return quoteIdent(db) + "." + quoteIdent(name) }

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// infoColumn describes a column as information_schema has it.
func infoColumn(name, dataType, colType string, prec, scale int, charset string, octets int) (column, error) {
	c := column{name: name, unsigned: strings.Contains(colType, "unsigned")}
	switch dataType {
	case "tinyint":
		c.kind = kTiny
	case "smallint":
		c.kind = kSmall
	case "mediumint":
		c.kind = kMedium
	case "int", "integer":
		c.kind = kInt
	case "bigint":
		c.kind = kBig
	case "decimal", "numeric":
		c.kind, c.prec, c.scale = kDecimal, prec, scale
	case "float":
		c.kind = kFloat
	case "double", "real", "double precision":
		c.kind = kDouble
	case "bit":
		c.kind, c.bits = kBit, prec
	case "year":
		c.kind = kYear
	case "date":
		c.kind = kDate
	case "time":
		c.kind = kTime
	case "datetime":
		c.kind = kDatetime
	case "timestamp":
		c.kind = kTimestamp
	case "char", "varchar", "tinytext", "text", "mediumtext", "longtext":
		c.kind, c.charset = kText, charset
	case "binary":
		c.kind, c.length = kBinary, octets
	case "varbinary", "tinyblob", "blob", "mediumblob", "longblob":
		c.kind = kBytes
	case "enum", "set":
		c.kind, c.charset = kEnum, charset
		if dataType == "set" {
			c.kind = kSet
		}
		labels, err := parseLabels(colType)
		if err != nil {
			return c, err
		}
		c.labels = labels
	case "json":
		c.kind = kJSON
	case "geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon", "geometrycollection", "geomcollection":
		c.kind = kGeometry
	default:
		return c, fmt.Errorf("type %s is not one mysql-source captures (docs/types-mysql.md lists them)", colType)
	}
	if c.kind > kBig {
		c.unsigned = false // no effect on the values' type
	}
	return c, nil
}

// parseLabels reads the labels of enum('a','b”c') or set(...).
func parseLabels(colType string) ([]string, error) {
	open := strings.IndexByte(colType, '(')
	if open < 0 || !strings.HasSuffix(colType, ")") {
		return nil, fmt.Errorf("labels of %s", colType)
	}
	body := colType[open+1 : len(colType)-1]
	var labels []string
	for i := 0; i < len(body); {
		if body[i] != '\'' {
			return nil, fmt.Errorf("labels of %s", colType)
		}
		var b strings.Builder
		j := i + 1
		for ; j < len(body); j++ {
			if body[j] == '\'' {
				if j+1 < len(body) && body[j+1] == '\'' {
					b.WriteByte('\'')
					j++
					continue
				}
				break
			}
			if body[j] == '\\' && j+1 < len(body) {
				j++
			}
			b.WriteByte(body[j])
		}
		labels = append(labels, b.String())
		i = j + 1
		if i < len(body) && body[i] == ',' {
			i++
		}
	}
	return labels, nil
}

// binlogColumns describes a table's columns as a table map event has them
// (binlog_row_metadata=FULL).
func (s *Source) binlogColumns(e *replication.TableMapEvent) ([]column, error) {
	names := e.ColumnNameString()
	if len(names) != int(e.ColumnCount) {
		return nil, fmt.Errorf("%w: the binlog's table map of %s.%s carries no column names: set binlog_row_metadata = FULL", ErrPreflight, e.Schema, e.Table)
	}
	unsigned := s.signedness(e)
	colls := e.CollationMap()
	enumColls := e.EnumSetCollationMap()
	enums, sets := e.EnumStrValueMap(), e.SetStrValueMap()
	pk := map[int]bool{}
	for _, k := range e.PrimaryKey {
		pk[int(k)] = true
	}
	cols := make([]column, e.ColumnCount)
	for i := range cols {
		c := column{name: names[i], unsigned: unsigned[i], key: pk[i]}
		_, c.nullable = e.Nullable(i)
		meta := e.ColumnMeta[i]
		binary := colls[i] == 63
		switch typ := e.ColumnType[i]; typ {
		case mysql.MYSQL_TYPE_TINY:
			c.kind = kTiny
		case mysql.MYSQL_TYPE_SHORT:
			c.kind = kSmall
		case mysql.MYSQL_TYPE_INT24:
			c.kind = kMedium
		case mysql.MYSQL_TYPE_LONG:
			c.kind = kInt
		case mysql.MYSQL_TYPE_LONGLONG:
			c.kind = kBig
		case mysql.MYSQL_TYPE_NEWDECIMAL:
			c.kind, c.prec, c.scale = kDecimal, int(meta>>8), int(meta&0xff)
		case mysql.MYSQL_TYPE_FLOAT:
			c.kind = kFloat
		case mysql.MYSQL_TYPE_DOUBLE:
			c.kind = kDouble
		case mysql.MYSQL_TYPE_BIT:
			c.kind, c.bits = kBit, int(meta>>8)*8+int(meta&0xff)
		case mysql.MYSQL_TYPE_YEAR:
			c.kind = kYear
		case mysql.MYSQL_TYPE_DATE, mysql.MYSQL_TYPE_NEWDATE:
			c.kind = kDate
		case mysql.MYSQL_TYPE_TIME, mysql.MYSQL_TYPE_TIME2:
			c.kind = kTime
		case mysql.MYSQL_TYPE_DATETIME, mysql.MYSQL_TYPE_DATETIME2:
			c.kind = kDatetime
		case mysql.MYSQL_TYPE_TIMESTAMP, mysql.MYSQL_TYPE_TIMESTAMP2:
			c.kind = kTimestamp
		case mysql.MYSQL_TYPE_VARCHAR, mysql.MYSQL_TYPE_VAR_STRING, mysql.MYSQL_TYPE_BLOB, mysql.MYSQL_TYPE_TINY_BLOB, mysql.MYSQL_TYPE_MEDIUM_BLOB, mysql.MYSQL_TYPE_LONG_BLOB:
			c.kind = kText
			if binary {
				c.kind = kBytes
			}
		case mysql.MYSQL_TYPE_STRING:
			switch real := byte(meta >> 8); {
			case real == mysql.MYSQL_TYPE_ENUM:
				c.kind, c.labels = kEnum, enums[i]
			case real == mysql.MYSQL_TYPE_SET:
				c.kind, c.labels = kSet, sets[i]
			case binary:
				c.kind, c.length = kBinary, stringLength(meta)
			default:
				c.kind = kText
			}
		case mysql.MYSQL_TYPE_JSON:
			c.kind = kJSON
		case mysql.MYSQL_TYPE_GEOMETRY:
			c.kind = kGeometry
		default:
			return nil, fmt.Errorf("%s.%s.%s: binlog column type %d is not one mysql-source captures", e.Schema, e.Table, c.name, typ)
		}
		switch c.kind {
		case kText:
			c.charset = s.collation[colls[i]]
		case kEnum, kSet:
			c.charset = s.collation[enumColls[i]]
			labels, err := decodeLabels(c.labels, c.charset)
			if err != nil {
				return nil, fmt.Errorf("%s.%s.%s: %w", e.Schema, e.Table, c.name, err)
			}
			c.labels = labels
		}
		if c.kind > kBig {
			c.unsigned = false
		}
		cols[i] = c
	}
	return cols, nil
}

// signedness reads the table map's signedness bits: one per numeric
// column, most significant first. MariaDB counts YEAR among the numeric
// columns (its YEAR is a TINYINT underneath), MySQL does not; go-mysql's
// UnsignedMap follows MySQL and shifts every column after a YEAR.
func (s *Source) signedness(e *replication.TableMapEvent) map[int]bool {
	out := map[int]bool{}
	bit := 0
	for i, typ := range e.ColumnType {
		switch typ {
		case mysql.MYSQL_TYPE_TINY, mysql.MYSQL_TYPE_SHORT, mysql.MYSQL_TYPE_INT24, mysql.MYSQL_TYPE_LONG, mysql.MYSQL_TYPE_LONGLONG,
			mysql.MYSQL_TYPE_NEWDECIMAL, mysql.MYSQL_TYPE_FLOAT, mysql.MYSQL_TYPE_DOUBLE:
		case mysql.MYSQL_TYPE_YEAR:
			if s.cfg.flavor != "mariadb" {
				continue
			}
		default:
			continue
		}
		if bit/8 < len(e.SignednessBitmap) {
			out[i] = e.SignednessBitmap[bit/8]&(0x80>>(bit%8)) != 0
		}
		bit++
	}
	return out
}

// stringLength is the length of a CHAR or BINARY column from its table
// map metadata.
func stringLength(meta uint16) int {
	b0, b1 := byte(meta>>8), byte(meta)
	if b0&0x30 != 0x30 {
		return int(uint16(b1) | uint16((b0&0x30)^0x30)<<4)
	}
	return int(b1)
}

// decodeLabels converts enum or set labels from the column's character set.
func decodeLabels(labels []string, charset string) ([]string, error) {
	dec, err := charsetDecoder(charset)
	if err != nil || dec == nil {
		return labels, err
	}
	out := make([]string, len(labels))
	for i, l := range labels {
		v, err := dec([]byte(l))
		if err != nil {
			return nil, err
		}
		out[i] = v.(string)
	}
	return out, nil
}

// binlogs lists the server's binlog files and their sizes.
func (s *Source) binlogs() ([]string, map[string]uint64, error) {
	r, err := s.conn.Execute("show binary logs")
	if err != nil {
		if errCode(err) == erAccessDenied {
			return nil, nil, fmt.Errorf("%w: user %s may not list the binlogs: GRANT REPLICATION CLIENT ON *.* TO %s", ErrPreflight, s.cfg.user, s.cfg.user)
		}
		return nil, nil, fmt.Errorf("show binary logs: %w", err)
	}
	var names []string
	sizes := map[string]uint64{}
	for i := range r.RowNumber() {
		n, _ := r.GetString(i, 0)
		size, _ := r.GetUint(i, 1)
		names = append(names, n)
		sizes[n] = size
	}
	return names, sizes, nil
}

// purged says why the binlog at a stored position is gone ("" when it is
// there).
func (s *Source) purged(at coords) (string, error) {
	names, sizes, err := s.binlogs()
	if err != nil {
		return "", err
	}
	size, ok := sizes[at.file]
	if !ok {
		oldest := "none"
		if len(names) > 0 {
			oldest = names[0]
		}
		return fmt.Sprintf("binlog file %s was purged; the oldest the server has is %s", at.file, oldest), nil
	}
	if at.pos > size {
		return fmt.Sprintf("binlog file %s is %d bytes, shorter than the position %d (was the binlog reset?)", at.file, size, at.pos), nil
	}
	return "", nil
}

// gtidsAt is the GTIDs executed before a binlog position, where the
// server can say (MariaDB); "" elsewhere.
func (s *Source) gtidsAt(file string, pos uint64) (string, error) {
	if s.cfg.flavor != "mariadb" {
		return "", nil
	}
	r, err := s.query("select binlog_gtid_pos(?, ?)", file, pos)
	if err != nil {
		return "", fmt.Errorf("read the GTIDs at %s:%d: %w", file, pos, err)
	}
	g, _ := r.GetString(0, 0)
	return g, nil
}

// serverPosition is where the server's binlog ends now.
func (s *Source) serverPosition() (coords, error) {
	r, err := s.conn.Execute("show master status")
	if err != nil {
		if errCode(err) == erAccessDenied {
			return coords{}, fmt.Errorf("%w: user %s may not read the binlog position: GRANT REPLICATION CLIENT ON *.* TO %s", ErrPreflight, s.cfg.user, s.cfg.user)
		}
		return coords{}, fmt.Errorf("show master status: %w", err)
	}
	if r.RowNumber() == 0 {
		return coords{}, fmt.Errorf("%w: the server reports no binlog position: is log_bin set?", ErrPreflight)
	}
	file, _ := r.GetString(0, 0)
	pos, _ := r.GetUint(0, 1)
	at := coords{file: file, pos: pos}
	if s.cfg.flavor == "mysql" {
		if g, err := s.query("select @@gtid_executed"); err == nil {
			at.gtid, _ = g.GetString(0, 0)
		}
		return at, nil
	}
	at.gtid, err = s.gtidsAt(file, pos)
	return at, err
}

// earliestPosition is the start of the oldest binlog the server has.
func (s *Source) earliestPosition() (coords, error) {
	names, _, err := s.binlogs()
	if err != nil {
		return coords{}, err
	}
	if len(names) == 0 {
		return coords{}, fmt.Errorf("%w: the server has no binlog", ErrPreflight)
	}
	at := coords{file: names[0], pos: 4}
	if s.cfg.flavor == "mysql" {
		if g, err := s.query("select @@gtid_purged"); err == nil {
			at.gtid, _ = g.GetString(0, 0)
		}
		return at, nil
	}
	at.gtid, err = s.gtidsAt(at.file, at.pos)
	return at, err
}

// parseUint is strconv.ParseUint of a status value.
func parseUint(s string) (uint64, error) { return strconv.ParseUint(strings.TrimSpace(s), 10, 64) }
