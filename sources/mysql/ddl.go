package mysql

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/pingcap/tidb/pkg/parser"
	"github.com/pingcap/tidb/pkg/parser/ast"
	tmysql "github.com/pingcap/tidb/pkg/parser/mysql"
	_ "github.com/pingcap/tidb/pkg/parser/test_driver" // the parser's value expressions
)

// The schema history's DDL: where the binlog carries no column metadata
// (binlog_row_metadata below FULL), each DDL statement of the binlog is
// parsed (TiDB's MySQL parser) and applied to the definitions of the
// tables it names, so a row is decoded with the columns its table had
// when it was written.

// tableDef is a table's definition at some point of the binlog.
type tableDef struct {
	db, name string
	charset  string // the table's default character set
	cols     []column
	key      []string // the primary key's columns, in its order
}

func (d *tableDef) full() string { return d.db + "." + d.name }

func (d *tableDef) clone() *tableDef {
	c := *d
	c.cols = slices.Clone(d.cols)
	c.key = slices.Clone(d.key)
	return &c
}

func (d *tableDef) column(name string) int {
	return slices.IndexFunc(d.cols, func(c column) bool { return strings.EqualFold(c.name, name) })
}

// withKey returns the columns with their key flags set, and the key's
// indexes in its order.
func (d *tableDef) withKey() ([]column, []int) {
	cols := slices.Clone(d.cols)
	var order []int
	for i := range cols {
		cols[i].key = false
	}
	for _, k := range d.key {
		if i := d.column(k); i >= 0 {
			cols[i].key = true
			order = append(order, i)
		}
	}
	return cols, order
}

// ddlEnv is what applying DDL needs to know of the server: default
// character sets, and the character set of each collation.
type ddlEnv struct {
	flavor     string
	server     string            // the server's default character set
	dbs        map[string]string // database: its default character set
	collations map[string]string // collation: its character set
}

func (e *ddlEnv) dbCharset(db string) (string, error) {
	if cs, ok := e.dbs[db]; ok {
		return cs, nil
	}
	if e.server == "" {
		return "", fmt.Errorf("the default character set of database %s is not known", db)
	}
	return e.server, nil
}

func (e *ddlEnv) collationCharset(name string) (string, bool) {
	cs, ok := e.collations[strings.ToLower(name)]
	return cs, ok
}

// database notes a database's default character set from CREATE or
// ALTER DATABASE.
func (e *ddlEnv) database(name string, opts []*ast.DatabaseOption) {
	cs := ""
	for _, o := range opts {
		switch o.Tp {
		case ast.DatabaseOptionCharset:
			cs = normalCharset(o.Value)
		case ast.DatabaseOptionCollate:
			if c, ok := e.collationCharset(o.Value); ok && cs == "" {
				cs = c
			}
		}
	}
	if cs == "" {
		if _, ok := e.dbs[name]; ok {
			return // ALTER DATABASE of something else
		}
		cs = e.server
	}
	if e.dbs == nil {
		e.dbs = map[string]string{}
	}
	e.dbs[name] = cs
}

// ddlTarget finds the table a statement the parser refused was about.
var ddlTarget = regexp.MustCompile("(?is)^\\s*(?:/\\*.*?\\*/\\s*)*(?:alter|create(?:\\s+or\\s+replace)?(?:\\s+temporary)?|drop|rename)\\s+table\\s+(?:if\\s+(?:not\\s+)?exists\\s+)?((?:`[^`]+`|[\\w$]+)(?:\\s*\\.\\s*(?:`[^`]+`|[\\w$]+))?)")

// applyDDL applies a statement run in database schema to defs (full
// name: definition). It returns the names of the tables it defined,
// changed or dropped (gone from defs); a statement that changes no table
// returns none. tracks says which tables the history keeps.
func applyDDL(env *ddlEnv, defs map[string]*tableDef, schema, query string, tracks func(db string) bool) ([]string, error) {
	stmts, _, err := parser.New().ParseSQL(normalizeDDL(query))
	if err != nil {
		m := ddlTarget.FindStringSubmatch(query)
		if m == nil {
			return nil, nil // not about a table
		}
		db, name, ok := splitQualified(m[1])
		if !ok {
			db, name = schema, unquote(m[1])
		}
		if !tracks(db) {
			return nil, nil
		}
		return []string{db + "." + name}, fmt.Errorf("parse DDL of %s.%s: %w", db, name, err)
	}
	a := applier{env: env, defs: defs, schema: schema, tracks: tracks}
	for _, st := range stmts {
		if err := a.apply(st); err != nil {
			return a.changed, err
		}
	}
	return a.changed, nil
}

type applier struct {
	env     *ddlEnv
	defs    map[string]*tableDef
	schema  string
	tracks  func(db string) bool
	changed []string
}

func (a *applier) name(t *ast.TableName) (string, string) {
	db := t.Schema.O
	if db == "" {
		db = a.schema
	}
	return db, t.Name.O
}

func (a *applier) set(d *tableDef) {
	a.defs[d.full()] = d
	a.changed = append(a.changed, d.full())
}

func (a *applier) drop(full string) {
	if _, ok := a.defs[full]; ok {
		delete(a.defs, full)
		a.changed = append(a.changed, full)
	}
}

func (a *applier) apply(st ast.StmtNode) error {
	switch s := st.(type) {
	case *ast.CreateTableStmt:
		return a.create(s)
	case *ast.AlterTableStmt:
		return a.alter(s)
	case *ast.RenameTableStmt:
		for _, tt := range s.TableToTables {
			if err := a.rename(tt.OldTable, tt.NewTable); err != nil {
				return err
			}
		}
	case *ast.DropTableStmt:
		if s.IsView || s.TemporaryKeyword == ast.TemporaryLocal {
			return nil
		}
		for _, t := range s.Tables {
			db, name := a.name(t)
			a.drop(db + "." + name)
		}
	case *ast.CreateDatabaseStmt:
		a.env.database(s.Name.O, s.Options)
	case *ast.AlterDatabaseStmt:
		name := s.Name.O
		if s.AlterDefaultDatabase || name == "" {
			name = a.schema
		}
		a.env.database(name, s.Options)
	case *ast.DropDatabaseStmt:
		for full, d := range a.defs {
			if strings.EqualFold(d.db, s.Name.O) {
				a.drop(full)
			}
		}
	}
	return nil
}

func (a *applier) create(s *ast.CreateTableStmt) error {
	if s.TemporaryKeyword != ast.TemporaryNone {
		return nil // never in a row-based binlog's rows
	}
	db, name := a.name(s.Table)
	if !a.tracks(db) {
		return nil
	}
	if _, ok := a.defs[db+"."+name]; ok && s.IfNotExists {
		return nil
	}
	if s.ReferTable != nil { // CREATE TABLE ... LIKE
		rdb, rname := a.name(s.ReferTable)
		src, ok := a.defs[rdb+"."+rname]
		if !ok {
			return fmt.Errorf("CREATE TABLE %s.%s LIKE %s.%s: the history has no definition of %s.%s", db, name, rdb, rname, rdb, rname)
		}
		d := src.clone()
		d.db, d.name = db, name
		a.set(d)
		return nil
	}
	d := &tableDef{db: db, name: name}
	cs, err := a.tableCharset(db, s.Options, "")
	if err != nil {
		return err
	}
	d.charset = cs
	for _, col := range s.Cols {
		c, primary, err := a.column(d, col)
		if err != nil {
			return err
		}
		d.cols = append(d.cols, c)
		if primary {
			d.key = []string{c.name}
		}
	}
	for _, c := range s.Constraints {
		if c.Tp == ast.ConstraintPrimaryKey {
			d.key = constraintColumns(c)
		}
	}
	a.set(d)
	return nil
}

func constraintColumns(c *ast.Constraint) []string {
	var out []string
	for _, k := range c.Keys {
		if k.Column != nil {
			out = append(out, k.Column.Name.O)
		}
	}
	return out
}

// tableCharset is the character set table options give, else inherit
// (a table's own when it is altered), else the database's default.
func (a *applier) tableCharset(db string, opts []*ast.TableOption, inherit string) (string, error) {
	cs := ""
	for _, o := range opts {
		switch o.Tp {
		case ast.TableOptionCharset:
			cs = normalCharset(o.StrValue)
		case ast.TableOptionCollate:
			if c, ok := a.env.collationCharset(o.StrValue); ok && cs == "" {
				cs = c
			}
		}
	}
	switch {
	case cs != "":
		return cs, nil
	case inherit != "":
		return inherit, nil
	}
	return a.env.dbCharset(db)
}

func normalCharset(cs string) string {
	cs = strings.ToLower(cs)
	if cs == "utf8" {
		return "utf8mb3"
	}
	return cs
}

// column turns a column definition into a column of d, and says whether
// it declares itself the primary key.
func (a *applier) column(d *tableDef, def *ast.ColumnDef) (column, bool, error) {
	c := column{name: def.Name.Name.O, nullable: true}
	tp := def.Tp
	cs := normalCharset(tp.GetCharset())
	if cs == "" && tp.GetCollate() != "" {
		cs, _ = a.env.collationCharset(tp.GetCollate())
	}
	primary := false
	for _, o := range def.Options {
		switch o.Tp {
		case ast.ColumnOptionNotNull:
			c.nullable = false
		case ast.ColumnOptionNull:
			c.nullable = true
		case ast.ColumnOptionPrimaryKey:
			primary, c.nullable = true, false
		case ast.ColumnOptionCollate:
			if x, ok := a.env.collationCharset(o.StrValue); ok && tp.GetCharset() == "" {
				cs = x
			}
		}
	}
	if cs == "" {
		cs = d.charset
	}
	flen, dec := tp.GetFlen(), tp.GetDecimal()
	text := func() {
		c.kind, c.charset = kText, cs
		if cs == "binary" {
			c.kind, c.charset = kBytes, ""
		}
	}
	switch tp.GetType() {
	case tmysql.TypeTiny:
		c.kind = kTiny
	case tmysql.TypeShort:
		c.kind = kSmall
	case tmysql.TypeInt24:
		c.kind = kMedium
	case tmysql.TypeLong:
		c.kind = kInt
	case tmysql.TypeLonglong:
		c.kind = kBig
	case tmysql.TypeNewDecimal:
		c.kind, c.prec, c.scale = kDecimal, 10, 0
		if flen > 0 {
			c.prec = flen
		}
		if dec > 0 {
			c.scale = dec
		}
	case tmysql.TypeFloat:
		c.kind = kFloat
		if flen > 24 { // FLOAT(25..53) is a DOUBLE
			c.kind = kDouble
		}
	case tmysql.TypeDouble:
		c.kind = kDouble
	case tmysql.TypeBit:
		c.kind, c.bits = kBit, 1
		if flen > 0 {
			c.bits = flen
		}
	case tmysql.TypeYear:
		c.kind = kYear
	case tmysql.TypeDate:
		c.kind = kDate
	case tmysql.TypeDuration:
		c.kind = kTime
	case tmysql.TypeDatetime:
		c.kind = kDatetime
	case tmysql.TypeTimestamp:
		c.kind = kTimestamp
	case tmysql.TypeVarchar, tmysql.TypeVarString, tmysql.TypeBlob, tmysql.TypeTinyBlob, tmysql.TypeMediumBlob, tmysql.TypeLongBlob:
		text()
	case tmysql.TypeString:
		text()
		if c.kind == kBytes {
			c.kind, c.length = kBinary, 1
			if flen > 0 {
				c.length = flen
			}
		}
	case tmysql.TypeEnum, tmysql.TypeSet:
		c.kind, c.charset, c.labels = kEnum, cs, slices.Clone(tp.GetElems())
		if tp.GetType() == tmysql.TypeSet {
			c.kind = kSet
		}
	case tmysql.TypeJSON:
		c.kind = kJSON
		if a.env.flavor == "mariadb" { // MariaDB's JSON is LONGTEXT
			c.kind, c.charset = kText, "utf8mb4"
		}
	case tmysql.TypeTiDBVectorFloat32: // a spatial type (normalizeDDL)
		c.kind = kGeometry
	default:
		return c, false, fmt.Errorf("%s.%s.%s: type %s is not one mysql-source captures", d.db, d.name, c.name, tp)
	}
	if c.kind <= kBig {
		c.unsigned = tmysql.HasUnsignedFlag(tp.GetFlag())
	}
	if c.kind == kText {
		if _, err := charsetDecoder(c.charset); err != nil {
			return c, false, fmt.Errorf("%s.%s.%s: %w", d.db, d.name, c.name, err)
		}
	}
	return c, primary, nil
}

func (a *applier) alter(s *ast.AlterTableStmt) error {
	db, name := a.name(s.Table)
	old, ok := a.defs[db+"."+name]
	if !ok {
		return nil // not a table the history keeps
	}
	d := old.clone()
	place := func(c column, pos *ast.ColumnPosition, at int) error {
		if at >= 0 {
			d.cols = slices.Delete(d.cols, at, at+1)
		}
		switch {
		case pos == nil || pos.Tp == ast.ColumnPositionNone:
			if at >= 0 {
				d.cols = slices.Insert(d.cols, at, c)
			} else {
				d.cols = append(d.cols, c)
			}
		case pos.Tp == ast.ColumnPositionFirst:
			d.cols = slices.Insert(d.cols, 0, c)
		default:
			after := d.column(pos.RelativeColumn.Name.O)
			if after < 0 {
				return fmt.Errorf("ALTER TABLE %s: no column %s to put %s after", d.full(), pos.RelativeColumn.Name.O, c.name)
			}
			d.cols = slices.Insert(d.cols, after+1, c)
		}
		return nil
	}
	renameKey := func(from, to string) {
		for i, k := range d.key {
			if strings.EqualFold(k, from) {
				d.key[i] = to
			}
		}
	}
	for _, sp := range s.Specs {
		switch sp.Tp {
		case ast.AlterTableAddColumns:
			for _, col := range sp.NewColumns {
				if d.column(col.Name.Name.O) >= 0 {
					if sp.IfNotExists {
						continue
					}
					return fmt.Errorf("ALTER TABLE %s: column %s exists already", d.full(), col.Name.Name.O)
				}
				c, primary, err := a.column(d, col)
				if err != nil {
					return err
				}
				if err := place(c, sp.Position, -1); err != nil {
					return err
				}
				if primary {
					d.key = []string{c.name}
				}
			}
		case ast.AlterTableDropColumn:
			at := d.column(sp.OldColumnName.Name.O)
			if at < 0 {
				if sp.IfExists {
					continue
				}
				return fmt.Errorf("ALTER TABLE %s: no column %s to drop", d.full(), sp.OldColumnName.Name.O)
			}
			d.key = slices.DeleteFunc(d.key, func(k string) bool { return strings.EqualFold(k, d.cols[at].name) })
			d.cols = slices.Delete(d.cols, at, at+1)
		case ast.AlterTableModifyColumn, ast.AlterTableChangeColumn:
			from := sp.NewColumns[0].Name.Name.O
			if sp.OldColumnName != nil {
				from = sp.OldColumnName.Name.O
			}
			at := d.column(from)
			if at < 0 {
				if sp.IfExists {
					continue
				}
				return fmt.Errorf("ALTER TABLE %s: no column %s to change", d.full(), from)
			}
			c, primary, err := a.column(d, sp.NewColumns[0])
			if err != nil {
				return err
			}
			renameKey(from, c.name)
			if err := place(c, sp.Position, at); err != nil {
				return err
			}
			if primary {
				d.key = []string{c.name}
			}
		case ast.AlterTableRenameColumn:
			at := d.column(sp.OldColumnName.Name.O)
			if at < 0 {
				return fmt.Errorf("ALTER TABLE %s: no column %s to rename", d.full(), sp.OldColumnName.Name.O)
			}
			renameKey(d.cols[at].name, sp.NewColumnName.Name.O)
			d.cols[at].name = sp.NewColumnName.Name.O
		case ast.AlterTableAddConstraint:
			if sp.Constraint != nil && sp.Constraint.Tp == ast.ConstraintPrimaryKey {
				d.key = constraintColumns(sp.Constraint)
				for _, k := range d.key {
					if i := d.column(k); i >= 0 {
						d.cols[i].nullable = false
					}
				}
			}
		case ast.AlterTableDropPrimaryKey:
			d.key = nil
		case ast.AlterTableOption:
			for _, o := range sp.Options {
				if o.Tp != ast.TableOptionCharset && o.Tp != ast.TableOptionCollate {
					continue
				}
				cs, err := a.tableCharset(d.db, []*ast.TableOption{o}, d.charset)
				if err != nil {
					return err
				}
				if o.Tp == ast.TableOptionCharset && o.UintValue == ast.TableOptionCharsetWithConvertTo {
					// CONVERT TO: every character column takes it.
					for i := range d.cols {
						if k := d.cols[i].kind; k == kText || k == kEnum || k == kSet {
							d.cols[i].charset = cs
						}
					}
				}
				d.charset = cs
			}
		case ast.AlterTableRenameTable:
			a.defs[d.full()] = d
			if err := a.rename(s.Table, sp.NewTable); err != nil {
				return err
			}
			ndb, nname := a.name(sp.NewTable)
			if d = a.defs[ndb+"."+nname]; d == nil {
				return nil // renamed out of the history's databases
			}
		}
	}
	a.set(d)
	return nil
}

func (a *applier) rename(from, to *ast.TableName) error {
	odb, oname := a.name(from)
	ndb, nname := a.name(to)
	d, ok := a.defs[odb+"."+oname]
	a.drop(odb + "." + oname)
	if !a.tracks(ndb) {
		return nil
	}
	if !ok {
		return fmt.Errorf("RENAME TABLE %s.%s TO %s.%s: the history has no definition of %s.%s", odb, oname, ndb, nname, odb, oname)
	}
	d = d.clone()
	d.db, d.name = ndb, nname
	a.set(d)
	return nil
}

// normalizeDDL rewrites what MySQL and MariaDB accept and TiDB's parser
// does not, where it does not change the columns' decoding: a spatial
// type becomes VECTOR (which mysql-source never meets otherwise, and
// reads back as GEOMETRY) without its SRID; SPATIAL goes from index
// definitions, OR REPLACE from MariaDB's CREATE OR REPLACE TABLE, and
// INVISIBLE and VISIBLE from column definitions (invisible columns are in
// the rows all the same). Words are changed only where they stand as
// keywords: never in a name, string or comment.
func normalizeDDL(q string) string {
	toks := lexSQL(q)
	var b strings.Builder
	word := func(i int) string {
		if i >= 0 && i < len(toks) && toks[i].kind == tokWord {
			return strings.ToUpper(toks[i].text)
		}
		return ""
	}
	// sig finds the significant token before or after i.
	sig := func(i, step int) int {
		for i += step; i >= 0 && i < len(toks) && toks[i].kind == tokSpace; i += step {
		}
		return i
	}
	ident := func(i int) bool {
		if i < 0 || i >= len(toks) {
			return false
		}
		if toks[i].kind == tokQuoted {
			return true
		}
		return toks[i].kind == tokWord && !notNames[strings.ToUpper(toks[i].text)]
	}
	follows := func(i int) bool {
		if i >= len(toks) {
			return true
		}
		if toks[i].kind == tokPunct {
			return toks[i].text == "," || toks[i].text == ")" || toks[i].text == ";"
		}
		return afterType[word(i)]
	}
	skip := map[int]bool{}
	for i, t := range toks {
		if t.kind != tokWord || skip[i] {
			continue
		}
		w := strings.ToUpper(t.text)
		prev, next := sig(i, -1), sig(i, 1)
		switch {
		case spatial[w] && ident(prev) && follows(next):
			toks[i].text = "VECTOR"
			if word(next) == "SRID" {
				skip[next] = true
				if n := sig(next, 1); n < len(toks) {
					skip[n] = true
				}
			}
		case w == "SPATIAL" && (word(next) == "INDEX" || word(next) == "KEY"):
			skip[i] = true
		case w == "OR" && word(prev) == "CREATE" && word(next) == "REPLACE":
			skip[i], skip[next] = true, true
		case (w == "INVISIBLE" || w == "VISIBLE") && prev >= 0 && !notNames[word(prev)] && toks[prev].kind != tokPunct &&
			word(sig(prev, -1)) != "INDEX" && word(sig(prev, -1)) != "KEY" && follows(next):
			skip[i] = true
		}
	}
	for i, t := range toks {
		if !skip[i] {
			b.WriteString(t.text)
		} else {
			b.WriteByte(' ')
		}
	}
	return b.String()
}

var spatial = map[string]bool{"GEOMETRY": true, "POINT": true, "LINESTRING": true, "POLYGON": true, "MULTIPOINT": true,
	"MULTILINESTRING": true, "MULTIPOLYGON": true, "GEOMETRYCOLLECTION": true, "GEOMCOLLECTION": true}

// notNames are the keywords a column's name may follow, which are no
// names themselves.
var notNames = map[string]bool{"ADD": true, "COLUMN": true, "CHANGE": true, "MODIFY": true, "DROP": true, "AFTER": true, "TO": true,
	"TABLE": true, "FIRST": true, "AS": true, "IF": true, "EXISTS": true, "NOT": true, "RENAME": true, "ALTER": true, "CREATE": true,
	"INDEX": true, "KEY": true, "BY": true, "ON": true, "": true}

// afterType are the words that may follow a column's type.
var afterType = map[string]bool{"NOT": true, "NULL": true, "DEFAULT": true, "COMMENT": true, "AFTER": true, "FIRST": true, "PRIMARY": true,
	"UNIQUE": true, "KEY": true, "COLLATE": true, "CHARACTER": true, "CHARSET": true, "INVISIBLE": true, "VISIBLE": true, "GENERATED": true,
	"AS": true, "ON": true, "CHECK": true, "REFERENCES": true, "SRID": true, "STORED": true, "VIRTUAL": true, "PERSISTENT": true,
	"AUTO_INCREMENT": true, "CONSTRAINT": true}

type tokKind uint8

const (
	tokSpace  tokKind = iota // white space and comments
	tokWord                  // a bare word or number
	tokQuoted                // a `quoted name`
	tokString                // a 'string' or "string"
	tokPunct
)

type token struct {
	kind tokKind
	text string
}

// lexSQL splits SQL into tokens whose texts join to it again.
func lexSQL(q string) []token {
	var out []token
	for i := 0; i < len(q); {
		c := q[i]
		j := i + 1
		kind := tokPunct
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			kind = tokSpace
			for j < len(q) && strings.IndexByte(" \t\n\r", q[j]) >= 0 {
				j++
			}
		case c == '#' || (c == '-' && strings.HasPrefix(q[i:], "-- ")):
			kind = tokSpace
			for j < len(q) && q[j] != '\n' {
				j++
			}
		case c == '/' && strings.HasPrefix(q[i:], "/*") && !strings.HasPrefix(q[i:], "/*!"):
			kind = tokSpace
			if k := strings.Index(q[i+2:], "*/"); k >= 0 {
				j = i + 2 + k + 2
			} else {
				j = len(q)
			}
		case c == '`':
			kind = tokQuoted
			for j < len(q) {
				if q[j] == '`' {
					if j+1 < len(q) && q[j+1] == '`' {
						j += 2
						continue
					}
					j++
					break
				}
				j++
			}
		case c == '\'' || c == '"':
			kind = tokString
			for j < len(q) {
				if q[j] == '\\' {
					j += 2
					continue
				}
				if q[j] == c {
					if j+1 < len(q) && q[j+1] == c {
						j += 2
						continue
					}
					j++
					break
				}
				j++
			}
		case isWordByte(c):
			kind = tokWord
			for j < len(q) && isWordByte(q[j]) {
				j++
			}
		}
		j = min(j, len(q))
		out = append(out, token{kind: kind, text: q[i:j]})
		i = j
	}
	return out
}

func isWordByte(c byte) bool {
	return c == '_' || c == '$' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}
