package postgres

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eddy-cdc/eddy/connect/connecttest"
	"github.com/eddy-cdc/eddy/internal/testdb"
)

var slotSeq atomic.Int64

// postgres-source under the source contract, against the local
// PostgreSQL (wal_level logical, as scripts/test-services.sh sets it up).
func TestPostgresSourceContract(t *testing.T) {
	ctx := context.Background()
	conn := func(t *testing.T, params map[string]any) *pgx.Conn { return testdb.Connect(t, params["dsn"].(string)) }
	connecttest.SourceSuite(t, connecttest.SourceTarget{
		Plugin: "postgres-source",
		New:    New,
		Origin: func(t *testing.T, setup []string) map[string]any {
			dsn := testdb.Postgres(t, "eddy_pgsource")
			params := map[string]any{"dsn": dsn, "tables": []any{"public.parts", "public.order_lines", "public.empty_things"}, "topic_prefix": "shop",
				"slot": fmt.Sprintf("eddy_contract_%d", slotSeq.Add(1)), "publication": "eddy_contract", "batch_size": 100}
			c := conn(t, params)
			for _, q := range setup {
				if _, err := c.Exec(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			return params
		},
		Exec: func(t *testing.T, params map[string]any, stmts ...string) {
			c := conn(t, params)
			for _, q := range stmts {
				if _, err := c.Exec(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
		},
		Disconnect: func(t *testing.T, params map[string]any) {
			if _, err := conn(t, params).Exec(ctx, "select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()"); err != nil {
				t.Fatal(err)
			}
		},
		Forget: func(t *testing.T, params map[string]any) {
			c := conn(t, params)
			for try := 0; ; try++ { // the closed source's walsender may hold the slot a moment
				_, err := c.Exec(ctx, "select pg_drop_replication_slot($1)", params["slot"])
				if err == nil {
					return
				}
				if try == 50 {
					t.Fatal(err)
				}
				time.Sleep(100 * time.Millisecond)
			}
		},
		BadConfigs: []connecttest.BadConfig{
			{Params: map[string]any{"tables": []any{"public.x"}}, Key: "dsn"},
			{Params: map[string]any{"dsn": "postgres://x/y"}, Key: "tables"},
			{Params: map[string]any{"dsn": "postgres://x/y", "tables": []any{"public.x"}, "snapshot": "sometimes"}, Key: "snapshot"},
			{Params: map[string]any{"dsn": "postgres://x/y", "tables": []any{"public.x"}, "slot_check_interval": "-1s"}, Key: "slot_check_interval"},
			{Params: map[string]any{"dsn": "postgres://x/y", "tables": []any{"public.x"}, "orphan_slots": "burn"}, Key: "orphan_slots"},
		},
	})
}
