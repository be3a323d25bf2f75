package postgres

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
)

// ErrPreflight marks a setup problem the user must fix; retrying will not.
var ErrPreflight = errors.New("postgres-source preflight")

// preflight checks what capture needs before anything is created.
func (s *Source) preflight(ctx context.Context) error {
	var wal string
	var canReplicate bool
	if err := s.conn.QueryRow(ctx, `select current_setting('wal_level'), coalesce((select rolreplication or rolsuper from pg_roles where rolname = current_user), false)`).Scan(&wal, &canReplicate); err != nil {
		return fmt.Errorf("read server settings: %w", err)
	}
	if wal != "logical" {
		return fmt.Errorf("%w: wal_level is %s; set wal_level = logical in postgresql.conf and restart PostgreSQL", ErrPreflight, wal)
	}
	if !canReplicate {
		return fmt.Errorf("%w: role %s lacks REPLICATION: ALTER ROLE %s WITH REPLICATION", ErrPreflight, s.user, s.user)
	}
	return nil
}

// loadTables resolves the table patterns against the catalog and reads
// each table's columns and key.
func (s *Source) loadTables(ctx context.Context) error {
	rows, err := s.conn.Query(ctx, `
		select c.oid, n.nspname, c.relname, c.relreplident::text, has_table_privilege(c.oid, 'SELECT')
		from pg_class c join pg_namespace n on n.oid = c.relnamespace
		where c.relkind in ('r', 'p') and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg_toast%'
		order by n.nspname, c.relname`)
	if err != nil {
		return fmt.Errorf("list tables: %w", err)
	}
	type found struct {
		oid          uint32
		schema, name string
		ident        string
		canSelect    bool
	}
	var all []found
	for rows.Next() {
		var f found
		if err := rows.Scan(&f.oid, &f.schema, &f.name, &f.ident, &f.canSelect); err != nil {
			rows.Close()
			return err
		}
		all = append(all, f)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	matched := map[string]bool{}
	s.order = nil
	for _, pattern := range s.cfg.tables {
		hit := false
		for _, f := range all {
			full := f.schema + "." + f.name
			if ok, _ := path.Match(qualify(pattern), full); !ok || matched[full] || excluded(s.cfg.exclude, full) {
				continue
			}
			hit = true
			matched[full] = true
			if !f.canSelect {
				return fmt.Errorf("%w: role %s may not SELECT from %s: GRANT SELECT ON %s TO %s", ErrPreflight, s.user, full, full, s.user)
			}
			t := &table{schema: f.schema, name: f.name, index: len(s.order)}
			if err := s.describe(ctx, t, f.oid, f.ident); err != nil {
				return err
			}
			s.order = append(s.order, t)
		}
		if !hit && !strings.ContainsAny(pattern, "*?[") {
			return fmt.Errorf("%w: table %s does not exist", ErrPreflight, qualify(pattern))
		}
	}
	if len(s.order) == 0 {
		return fmt.Errorf("%w: no table matches %s", ErrPreflight, strings.Join(s.cfg.tables, ", "))
	}
	s.byName = map[string]*table{}
	for _, t := range s.order {
		s.byName[t.schema+"."+t.name] = t
	}
	return nil
}

func qualify(p string) string {
	if strings.Contains(p, ".") {
		return p
	}
	return "public." + p
}

func excluded(patterns []string, full string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(qualify(p), full); ok {
			return true
		}
	}
	return false
}

// describe reads a table's columns and primary key. A table without a
// primary key is captured only under REPLICA IDENTITY FULL or USING INDEX,
// keyed by the identity's columns.
func (s *Source) describe(ctx context.Context, t *table, oid uint32, ident string) error {
	rows, err := s.conn.Query(ctx, `
		select a.attname, a.atttypid, a.atttypmod, a.attndims,
		       coalesce((select true from pg_index i where i.indrelid = a.attrelid and i.indisprimary and a.attnum = any(i.indkey)), false),
		       coalesce((select true from pg_index i where i.indrelid = a.attrelid and i.indisreplident and a.attnum = any(i.indkey)), false)
		from pg_attribute a where a.attrelid = $1 and a.attnum > 0 and not a.attisdropped order by a.attnum`, oid)
	if err != nil {
		return fmt.Errorf("describe %s.%s: %w", t.schema, t.name, err)
	}
	defer rows.Close()
	var cols []column
	var hasPK, hasIdentIndex bool
	var identCols []bool
	for rows.Next() {
		var name string
		var typ uint32
		var typmod, dims int32
		var pk, identIdx bool
		if err := rows.Scan(&name, &typ, &typmod, &dims, &pk, &identIdx); err != nil {
			return err
		}
		c := mapType(name, typ, typmod, s.types, int(dims))
		c.key = pk
		hasPK = hasPK || pk
		hasIdentIndex = hasIdentIndex || identIdx
		identCols = append(identCols, identIdx)
		cols = append(cols, c)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	switch {
	case hasPK:
	case ident == "i" && hasIdentIndex:
		for i := range cols {
			cols[i].key = identCols[i]
		}
	case ident == "f":
		// No key: records are keyless, spread by position.
	default:
		return fmt.Errorf("%w: table %s.%s has no primary key and its replica identity is %s, so updates and deletes cannot be captured: add a primary key, or ALTER TABLE %s.%s REPLICA IDENTITY FULL", ErrPreflight, t.schema, t.name, identName(ident), t.schema, t.name)
	}
	t.cols = cols
	t.keyCols = nil
	for i, c := range cols {
		if c.key {
			t.keyCols = append(t.keyCols, i)
		}
	}
	t.relID = oid
	return t.buildSchemas(s.cfg.prefix)
}

func identName(c string) string {
	return map[string]string{"d": "DEFAULT", "f": "FULL", "i": "USING INDEX", "n": "NOTHING"}[c]
}

// ensurePublication creates the publication for the tables, or adds the
// tables it lacks.
func (s *Source) ensurePublication(ctx context.Context) error {
	var exists bool
	if err := s.conn.QueryRow(ctx, `select exists(select 1 from pg_publication where pubname = $1)`, s.cfg.publication).Scan(&exists); err != nil {
		return fmt.Errorf("read publication %s: %w", s.cfg.publication, err)
	}
	names := make([]string, 0, len(s.order))
	for _, t := range s.order {
		names = append(names, pgx.Identifier{t.schema, t.name}.Sanitize())
	}
	if !exists {
		_, err := s.conn.Exec(ctx, fmt.Sprintf("create publication %s for table %s", pgx.Identifier{s.cfg.publication}.Sanitize(), strings.Join(names, ", ")))
		if err != nil {
			return fmt.Errorf("create publication %s: %w", s.cfg.publication, err)
		}
		return nil
	}
	rows, err := s.conn.Query(ctx, `select schemaname || '.' || tablename from pg_publication_tables where pubname = $1`, s.cfg.publication)
	if err != nil {
		return err
	}
	have, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	sort.Strings(have)
	var missing []string
	for _, t := range s.order {
		if i := sort.SearchStrings(have, t.schema+"."+t.name); i >= len(have) || have[i] != t.schema+"."+t.name {
			missing = append(missing, pgx.Identifier{t.schema, t.name}.Sanitize())
		}
	}
	if len(missing) > 0 {
		if _, err := s.conn.Exec(ctx, fmt.Sprintf("alter publication %s add table %s", pgx.Identifier{s.cfg.publication}.Sanitize(), strings.Join(missing, ", "))); err != nil {
			return fmt.Errorf("add tables to publication %s: %w", s.cfg.publication, err)
		}
	}
	return nil
}

// slotInfo is what pg_replication_slots says of the connector's slot.
type slotInfo struct {
	exists    bool
	plugin    string
	confirmed string
}

func (s *Source) readSlot(ctx context.Context) (slotInfo, error) {
	var si slotInfo
	err := s.conn.QueryRow(ctx, `select plugin, coalesce(confirmed_flush_lsn::text, '') from pg_replication_slots where slot_name = $1 and database = current_database()`, s.cfg.slot).Scan(&si.plugin, &si.confirmed)
	if errors.Is(err, pgx.ErrNoRows) {
		var elsewhere string
		err2 := s.conn.QueryRow(ctx, `select coalesce(database, '') from pg_replication_slots where slot_name = $1`, s.cfg.slot).Scan(&elsewhere)
		if err2 == nil {
			return si, fmt.Errorf("%w: slot %s belongs to database %q, not this one", ErrPreflight, s.cfg.slot, elsewhere)
		}
		return si, nil
	}
	if err != nil {
		return si, fmt.Errorf("read slot %s: %w", s.cfg.slot, err)
	}
	si.exists = true
	if si.plugin != "pgoutput" {
		return si, fmt.Errorf("%w: slot %s uses plugin %s, not pgoutput: it belongs to another tool; choose another slot name", ErrPreflight, s.cfg.slot, si.plugin)
	}
	return si, nil
}
