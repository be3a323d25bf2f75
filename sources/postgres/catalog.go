package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/eddy-cdc/eddy/internal/capture"
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
	var keep string
	if err := s.conn.QueryRow(ctx, `select current_setting('max_slot_wal_keep_size')`).Scan(&keep); err == nil && keep == "-1" {
		s.log.Warn("max_slot_wal_keep_size is -1: a replication slot that nothing reads (a stopped or removed connector) retains WAL until the server's disk is full; "+
			"set it (such as max_slot_wal_keep_size = 50GB) so the server gives up such a slot first, and this connector then stops with the choice to snapshot again", "slot", s.cfg.slot)
	}
	return nil
}

// loadTables resolves the table patterns against the catalog and reads
// each table's columns and key. A partition is captured through its
// partitioned root when that is captured too (the publication publishes
// through the root, so its changes come under the root's name); every
// leaf partition of a captured partitioned table must have a replica
// identity, or publishing it would make the application's updates and
// deletes of that partition fail.
func (s *Source) loadTables(ctx context.Context) error {
	rows, err := s.conn.Query(ctx, `
		select c.oid, n.nspname, c.relname, c.relreplident::text, has_table_privilege(c.oid, 'SELECT'), c.relkind = 'p',
		       case when c.relispartition then pg_partition_root(c.oid)::oid else 0::oid end
		from pg_class c join pg_namespace n on n.oid = c.relnamespace
		where c.relkind in ('r', 'p') and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg_toast%'
		order by n.nspname, c.relname`)
	if err != nil {
		return fmt.Errorf("list tables: %w", err)
	}
	type found struct {
		oid, root    uint32
		schema, name string
		ident        string
		canSelect    bool
		partitioned  bool
	}
	var all []found
	for rows.Next() {
		var f found
		if err := rows.Scan(&f.oid, &f.schema, &f.name, &f.ident, &f.canSelect, &f.partitioned, &f.root); err != nil {
			rows.Close()
			return err
		}
		all = append(all, f)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	var picked []found
	matched := map[string]bool{}
	for _, pattern := range s.cfg.tables {
		hit := false
		for _, f := range all {
			full := f.schema + "." + f.name
			if !capture.Match(pattern, full) || capture.Excluded(s.cfg.exclude, full) {
				continue
			}
			hit = true
			if !matched[full] {
				matched[full] = true
				picked = append(picked, f)
			}
		}
		if !hit && !strings.ContainsAny(pattern, "*?[") {
			return fmt.Errorf("%w: table %s does not exist (a name with capitals or spaces matches as written; in PostgreSQL's quoted form, write schema.\"OrderItems\")", ErrPreflight, pattern)
		}
	}
	capturedRoots := map[uint32]bool{}
	for _, f := range picked {
		if f.partitioned && f.root == 0 {
			capturedRoots[f.oid] = true
		}
	}
	s.order = nil
	for _, f := range picked {
		full := f.schema + "." + f.name
		if f.root != 0 && capturedRoots[f.root] {
			continue // its changes and its rows come through the root
		}
		if !f.canSelect {
			return fmt.Errorf("%w: role %s may not SELECT from %s: GRANT SELECT ON %s TO %s", ErrPreflight, s.user, full, full, s.user)
		}
		t := &table{schema: f.schema, name: f.name, index: len(s.order), partitioned: f.partitioned}
		if err := s.describe(ctx, t, f.oid, f.ident); err != nil {
			return err
		}
		if f.partitioned {
			if err := s.checkPartitions(ctx, t); err != nil {
				return err
			}
		}
		s.order = append(s.order, t)
	}
	if len(s.order) == 0 {
		return fmt.Errorf("%w: no table matches %s", ErrPreflight, strings.Join(s.cfg.tables, ", "))
	}
	s.byName = map[string]*table{}
	topics := map[string]*table{}
	for _, t := range s.order {
		s.byName[t.schema+"."+t.name] = t
		if o := topics[t.topic]; o != nil {
			return fmt.Errorf("%w: tables %s.%s and %s.%s would both write to topic %s (characters a topic name may not hold become _): exclude one with exclude_tables, or capture them with two connectors of different topic_prefix", ErrPreflight, o.schema, o.name, t.schema, t.name, t.topic)
		}
		topics[t.topic] = t
	}
	return nil
}

// checkPartitions refuses a partitioned table one of whose leaf
// partitions has no usable replica identity: once published, the
// application's updates and deletes of that partition would fail.
func (s *Source) checkPartitions(ctx context.Context, t *table) error {
	rows, err := s.conn.Query(ctx, `
		select n.nspname || '.' || c.relname, c.relreplident::text,
		       exists(select 1 from pg_index i where i.indrelid = c.oid and (i.indisprimary or (c.relreplident = 'i' and i.indisreplident)))
		from pg_partition_tree($1) pt join pg_class c on c.oid = pt.relid join pg_namespace n on n.oid = c.relnamespace
		where pt.isleaf order by 1`, t.relID)
	if err != nil {
		return fmt.Errorf("list partitions of %s.%s: %w", t.schema, t.name, err)
	}
	defer rows.Close()
	for rows.Next() {
		var name, ident string
		var hasIndex bool
		if err := rows.Scan(&name, &ident, &hasIndex); err != nil {
			return err
		}
		if ident == "f" || ident != "n" && hasIndex {
			continue
		}
		return fmt.Errorf("%w: partition %s of %s.%s has no primary key and its replica identity is %s: publishing it would make the application's updates and deletes of it fail; add a primary key to %s.%s, or ALTER TABLE %s REPLICA IDENTITY FULL", ErrPreflight, name, t.schema, t.name, identName(ident), t.schema, t.name, name)
	}
	return rows.Err()
}

// tablePattern reads an entry of tables or exclude_tables: schema.table,
// the schema public when left out, each part a glob (path.Match) or a
// name in double quotes as PostgreSQL writes one ("OrderItems", "order
// lines", "" for a quote inside), which matches itself alone.
func tablePattern(entry string) (string, error) {
	var parts []string
	var b strings.Builder
	quoted, inQuotes := false, false
	for i := 0; i < len(entry); i++ {
		c := entry[i]
		switch {
		case inQuotes && c == '"' && i+1 < len(entry) && entry[i+1] == '"':
			b.WriteByte('"')
			i++
		case c == '"' && (inQuotes || b.Len() == 0 && !quoted):
			inQuotes = !inQuotes
			quoted = true
		case inQuotes && strings.IndexByte(`*?[]\`, c) >= 0:
			b.WriteByte('\\')
			b.WriteByte(c)
		case inQuotes || c != '.':
			if quoted && !inQuotes {
				return "", fmt.Errorf("%q: text after a quoted name; write schema.\"Table\"", entry)
			}
			b.WriteByte(c)
		default:
			parts = append(parts, b.String())
			b.Reset()
			quoted = false
		}
	}
	if inQuotes {
		return "", fmt.Errorf("%q: a quote is not closed", entry)
	}
	parts = append(parts, b.String())
	switch {
	case len(parts) == 1:
		parts = []string{"public", parts[0]}
	case len(parts) > 2:
		return "", fmt.Errorf("%q: want schema.table (quote a name that holds a dot: schema.\"a.b\")", entry)
	}
	if parts[0] == "" || parts[1] == "" {
		return "", fmt.Errorf("%q: an empty schema or table name", entry)
	}
	return parts[0] + "." + parts[1], nil
}

// tablePatterns reads every entry of a tables list.
func tablePatterns(key string, entries []string) ([]string, error) {
	out := make([]string, len(entries))
	for i, e := range entries {
		p, err := tablePattern(e)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		out[i] = p
	}
	return out, nil
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
	rows.Close()
	if err := s.loadProps(ctx, cols); err != nil {
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

// ensurePublication makes the publication publish the captured tables.
//
// Eddy's own publication (created by it, or named as it names one) is
// kept to exactly the captured tables: FOR TABLE ONLY, so an inheritance
// child is not published (it would make the application's updates and
// deletes of a child without a replica identity fail), and through the
// partitioned root, so a partition's changes come under its root's name.
// A table dropped from the configuration leaves the publication with it.
//
// A publication the user made is theirs: the tables it lacks are added,
// and one that publishes partitions under their own names is refused
// with the fix.
func (s *Source) ensurePublication(ctx context.Context) error {
	pub := pgx.Identifier{s.cfg.publication}.Sanitize()
	var oid uint32
	var allTables, viaRoot bool
	var comment string
	err := s.conn.QueryRow(ctx, `select oid, puballtables, pubviaroot, coalesce(obj_description(oid, 'pg_publication'), '') from pg_publication where pubname = $1`,
		s.cfg.publication).Scan(&oid, &allTables, &viaRoot, &comment)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("read publication %s: %w", s.cfg.publication, err)
	}
	exists := err == nil
	mark := "Eddy's publication for connector " + s.name + ": it publishes what the connector captures and follows its configuration"
	ours := !exists || comment == mark || s.cfg.publication == "eddy_"+capture.AvroName(s.name)
	names := make([]string, 0, len(s.order))
	partitioned := false
	for _, t := range s.order {
		names = append(names, "only "+pgx.Identifier{t.schema, t.name}.Sanitize())
		partitioned = partitioned || t.partitioned
	}
	var have map[uint32]bool
	if exists {
		rows, err := s.conn.Query(ctx, `select prrelid from pg_publication_rel where prpubid = $1`, oid)
		if err != nil {
			return fmt.Errorf("read publication %s: %w", s.cfg.publication, err)
		}
		rels, err := pgx.CollectRows(rows, pgx.RowTo[uint32])
		if err != nil {
			return fmt.Errorf("read publication %s: %w", s.cfg.publication, err)
		}
		have = map[uint32]bool{}
		for _, r := range rels {
			have[r] = true
		}
	}
	var stmts []string
	switch {
	case !exists:
		stmts = append(stmts, fmt.Sprintf("create publication %s for table %s with (publish_via_partition_root = true)", pub, strings.Join(names, ", ")))
	case ours:
		same := !allTables && len(have) == len(s.order)
		for _, t := range s.order {
			same = same && have[t.relID]
		}
		if allTables {
			return fmt.Errorf("%w: publication %s publishes all tables; Eddy keeps its own publication to the tables it captures: drop it, or name another with publication:", ErrPreflight, s.cfg.publication)
		}
		if !same {
			stmts = append(stmts, fmt.Sprintf("alter publication %s set table %s", pub, strings.Join(names, ", ")))
		}
		if !viaRoot {
			stmts = append(stmts, fmt.Sprintf("alter publication %s set (publish_via_partition_root = true)", pub))
		}
	default:
		if partitioned && !viaRoot {
			return fmt.Errorf("%w: publication %s publishes the changes of partitions under the partitions' names, which the connector does not read: ALTER PUBLICATION %s SET (publish_via_partition_root = true)", ErrPreflight, s.cfg.publication, pub)
		}
		if !allTables {
			var missing []string
			for i, t := range s.order {
				if !have[t.relID] {
					missing = append(missing, names[i])
				}
			}
			if len(missing) > 0 {
				stmts = append(stmts, fmt.Sprintf("alter publication %s add table %s", pub, strings.Join(missing, ", ")))
			}
		}
	}
	if len(stmts) == 0 {
		return nil
	}
	if ours {
		stmts = append(stmts, fmt.Sprintf("comment on publication %s is '%s'", pub, strings.ReplaceAll(mark, "'", "''")))
	}
	tx, err := s.conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("publication %s: %w", s.cfg.publication, err)
	}
	defer tx.Rollback(ctx)
	for _, q := range stmts {
		if _, err := tx.Exec(ctx, q); err != nil {
			return fmt.Errorf("publication %s: %s: %w", s.cfg.publication, q, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("publication %s: %w", s.cfg.publication, err)
	}
	s.log.Info("publication set", "publication", s.cfg.publication, "tables", len(s.order))
	return nil
}

// slotInfo is what pg_replication_slots says of the connector's slot.
type slotInfo struct {
	exists    bool
	plugin    string
	confirmed string
	walStatus string // reserved, extended, unreserved, or lost: the server invalidated it
}

func (s *Source) readSlot(ctx context.Context) (slotInfo, error) {
	var si slotInfo
	err := s.conn.QueryRow(ctx, `select plugin, coalesce(confirmed_flush_lsn::text, ''), coalesce(wal_status, '') from pg_replication_slots where slot_name = $1 and database = current_database()`, s.cfg.slot).Scan(&si.plugin, &si.confirmed, &si.walStatus)
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
