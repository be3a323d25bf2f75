package outbox

import (
	"context"
	"fmt"
	"strings"
)

// Schema is the DDL of the outbox table of cfg: CREATE TABLE IF NOT
// EXISTS, with Debezium's columns (as the Config names them) and Eddy's
// headers column. A ModeMessage Config has no table: its Schema is empty.
//
// PostgreSQL keeps the payload as jsonb, MySQL and MariaDB as JSON; the
// id is a uuid (CHAR(36) on MySQL), the primary key the cleanup job
// deletes by.
func (cfg Config) Schema() (string, error) {
	w, err := New(cfg)
	if err != nil {
		return "", err
	}
	return w.Schema(), nil
}

// Schema is the outbox table's DDL for a dialect, with the default table
// and column names.
func Schema(d Dialect) (string, error) {
	return Config{Dialect: d}.Schema()
}

// Schema is the DDL of the Writer's table; empty in ModeMessage.
func (w *Writer) Schema() string {
	if w.cfg.Mode == ModeMessage {
		return ""
	}
	types := [6]string{"uuid PRIMARY KEY", "varchar(255) NOT NULL", "varchar(255) NOT NULL", "varchar(255) NOT NULL", "jsonb", "jsonb"}
	tail := ""
	if w.dialect == MySQL {
		types = [6]string{"CHAR(36) CHARACTER SET ascii NOT NULL PRIMARY KEY", "VARCHAR(255) NOT NULL", "VARCHAR(255) NOT NULL", "VARCHAR(255) NOT NULL", "JSON", "JSON"}
		tail = " CHARACTER SET utf8mb4"
	}
	c := w.cols
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS %s (", w.table)
	for i, col := range []string{c.ID, c.AggregateType, c.AggregateID, c.Type, c.Payload, c.Headers} {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "\n  %s %s", quoteIdent(w.dialect, col), types[i])
	}
	b.WriteString("\n)" + tail)
	return b.String()
}

// Migrate creates the Writer's outbox table if it is not there; a table
// already there (one made for Debezium, say) is left as it is. In
// ModeMessage it does nothing. db is a pgx pool, connection or
// transaction, or a database/sql DB, Conn or Tx.
func (w *Writer) Migrate(ctx context.Context, db any) error {
	ddl := w.Schema()
	if ddl == "" {
		return nil
	}
	if err := execute(ctx, db, ddl); err != nil {
		return fmt.Errorf("outbox: create table %s: %w", w.cfg.Table, err)
	}
	return nil
}

// Migrate creates cfg's outbox table if it is not there.
func Migrate(ctx context.Context, db any, cfg Config) error {
	w, err := New(cfg)
	if err != nil {
		return err
	}
	return w.Migrate(ctx, db)
}
