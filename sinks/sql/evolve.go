package sql

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/hamba/avro/v2"
	"github.com/jackc/pgx/v5"

	"github.com/eddy-cdc/eddy/connect"
)

// pgColumnType is a PostgreSQL type as format_type writes it, read into
// the family it belongs to (for the types whose widening the sink knows)
// and its modifiers.
type pgColumnType struct {
	family string // "int", "numeric", "float", "char", "text", or "" (another type)
	rank   int    // int: 1 smallint, 2 integer, 3 bigint; float: 1 real, 2 double
	n, s   int    // numeric(n,s), varchar(n), char(n); n 0: unbounded
	char   bool   // character(n) rather than character varying(n)
}

// aliases are the names pgType gives that format_type writes otherwise.
var pgAliases = map[string]string{
	"timestamptz": "timestamp with time zone", "timestamp": "timestamp without time zone",
	"time": "time without time zone", "varchar": "character varying", "char": "character",
}

// canonicalType writes a type as format_type does.
func canonicalType(typ string) string {
	if a, ok := pgAliases[typ]; ok {
		return a
	}
	return typ
}

func parsePgType(typ string) pgColumnType {
	base, args, _ := strings.Cut(canonicalType(typ), "(")
	var n, s int
	if args != "" {
		a, b, _ := strings.Cut(strings.TrimSuffix(args, ")"), ",")
		n, _ = strconv.Atoi(strings.TrimSpace(a))
		s, _ = strconv.Atoi(strings.TrimSpace(b))
	}
	switch base {
	case "smallint":
		return pgColumnType{family: "int", rank: 1}
	case "integer":
		return pgColumnType{family: "int", rank: 2}
	case "bigint":
		return pgColumnType{family: "int", rank: 3}
	case "numeric":
		return pgColumnType{family: "numeric", n: n, s: s}
	case "real":
		return pgColumnType{family: "float", rank: 1}
	case "double precision":
		return pgColumnType{family: "float", rank: 2}
	case "character varying":
		return pgColumnType{family: "char", n: n}
	case "character":
		return pgColumnType{family: "char", n: max(n, 1), char: true}
	case "text":
		return pgColumnType{family: "text"}
	}
	return pgColumnType{}
}

// intDigits is how many decimal digits an integer type's values take.
var intDigits = [4]int{0, 5, 10, 19}

// holds says whether a column of type a takes every value of type b as
// is. known is false when either type is one the sink does not reason
// about (an enum, an array, a date…): the sink then leaves the column be.
func holds(a, b string) (ok, known bool) {
	a, b = canonicalType(a), canonicalType(b)
	if a == b {
		return true, true
	}
	ta, tb := parsePgType(a), parsePgType(b)
	if ta.family == "text" {
		return true, true // every value has a text form
	}
	if ta.family == "" || tb.family == "" {
		return true, false
	}
	switch {
	case ta.family == "int" && tb.family == "int", ta.family == "float" && tb.family == "float":
		return ta.rank >= tb.rank, true
	case ta.family == "numeric" && tb.family == "int":
		return ta.n == 0 || ta.n-ta.s >= intDigits[tb.rank], true
	case ta.family == "numeric" && tb.family == "numeric":
		return ta.n == 0 || tb.n != 0 && ta.s >= tb.s && ta.n-ta.s >= tb.n-tb.s, true
	case ta.family == "char" && tb.family == "char":
		// character(n) pads what it holds, so only varchar takes another's
		// values as they are.
		return !ta.char && (ta.n == 0 || tb.n != 0 && ta.n >= tb.n), true
	}
	return false, true
}

// evolveColumn compares a target column (current) with the type its
// field now asks for. A column that holds the new values is left be; one
// that a wider type would hold is widened under auto_evolve (int to
// bigint, varchar(n) to varchar(m > n) or text, a numeric's precision up)
// before the rows that need it; any other change stops the task with the
// column named and the choices, rather than failing each row into the
// dead-letter topic.
func (s *Postgres) evolveColumn(ctx context.Context, tx pgx.Tx, table string, t *targetTable, f *avro.Field) error {
	current := t.cols[f.Name()]
	want := s.wantedType(f)
	if err := s.addEnumLabels(ctx, tx, f, want); err != nil {
		return err
	}
	ok, known := holds(current, want)
	if ok || !known {
		return nil
	}
	widens, _ := holds(want, current)
	if !widens {
		return connect.Permanent(fmt.Errorf("column %s.%s is %s in the target, and the source's is now %s, which it cannot hold and a wider type of its own cannot either: change the target column (ALTER TABLE %s ALTER COLUMN %s TYPE ...), or drop the table and take a new snapshot",
			table, f.Name(), current, want, pgIdent(table), pgIdent(f.Name())))
	}
	if !s.autoEvolve {
		return connect.Permanent(fmt.Errorf("column %s.%s is %s in the target, and the source's is now %s: set auto_evolve: true to widen it, or ALTER TABLE %s ALTER COLUMN %s TYPE %s",
			table, f.Name(), current, want, pgIdent(table), pgIdent(f.Name()), want))
	}
	if _, err := tx.Exec(ctx, fmt.Sprintf("alter table %s alter column %s type %s", pgIdent(table), pgIdent(f.Name()), want)); err != nil {
		return fmt.Errorf("widen %s.%s to %s: %w", table, f.Name(), want, err)
	}
	s.log.Info("widened column", "table", table, "column", f.Name(), "from", current, "to", want)
	t.cols[f.Name()] = want
	clear(s.renderers) // compiled for the column's old type
	return nil
}

// wantedType is the type a field asks for: the source's when it says,
// else its Avro type's mapping.
func (s *Postgres) wantedType(f *avro.Field) string {
	if src, _ := f.Prop(connect.PropPGType).(string); src != "" {
		return src
	}
	return canonicalType(pgType(f.Type()))
}

// addEnumLabels gives an enum type of the target the labels the source's
// has gained. A label added in a transaction cannot be used in it, so
// they are added on a connection of their own, committed at once (a label
// is harmless if the batch then fails).
func (s *Postgres) addEnumLabels(ctx context.Context, tx pgx.Tx, f *avro.Field, typ string) error {
	labels, ok := f.Prop(connect.PropPGEnum).([]any)
	if !ok {
		return nil
	}
	rows, err := tx.Query(ctx, "select enumlabel::text from pg_enum where enumtypid = to_regtype($1)", typ)
	if err != nil {
		return fmt.Errorf("read the labels of %s: %w", typ, err)
	}
	have, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("read the labels of %s: %w", typ, err)
	}
	if len(have) == 0 {
		return nil // not an enum in the target
	}
	known := map[string]bool{}
	for _, l := range have {
		known[l] = true
	}
	var missing []string
	for _, l := range labels {
		if l := fmt.Sprint(l); !known[l] {
			missing = append(missing, l)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	side, err := pgx.Connect(ctx, s.dsn)
	if err != nil {
		return fmt.Errorf("connect to add labels to %s: %w", typ, err)
	}
	defer side.Close(ctx)
	for _, l := range missing {
		if _, err := side.Exec(ctx, fmt.Sprintf("alter type %s add value if not exists '%s'", typ, strings.ReplaceAll(l, "'", "''"))); err != nil {
			return fmt.Errorf("add label %q to %s: %w", l, typ, err)
		}
		s.log.Info("added enum label", "type", typ, "label", l)
	}
	return nil
}
