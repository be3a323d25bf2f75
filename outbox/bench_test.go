package outbox_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/eddy-cdc/eddy/internal/testdb"
	"github.com/eddy-cdc/eddy/outbox"
)

// The cost the library adds to the application's transaction: an event
// written with Write against a plain INSERT of the same row by hand, each
// in transactions of 100 events (both pay the same commits). ns/op is per
// event; the difference between the two is the library's cost.
//
//	go test -run '^$' -bench . -benchtime 20000x ./outbox/
func BenchmarkWrite(b *testing.B) {
	ctx := context.Background()
	payload := []byte(`{"id":42,"customer":"c-7","total":"129.90","lines":[{"sku":"A-1","qty":2},{"sku":"B-9","qty":1}]}`)
	ev := outbox.Event{AggregateType: "order", AggregateID: "42", Type: "OrderCreated", Payload: payload}
	const perTx = 100

	b.Run("postgres", func(b *testing.B) {
		c := testdb.Connect(b, testdb.Postgres(b, "outbox"))
		w, _ := outbox.New(outbox.Config{Dialect: outbox.Postgres})
		if err := w.Migrate(ctx, c); err != nil {
			b.Fatal(err)
		}
		run := func(b *testing.B, write func(tx pgx.Tx) error) {
			tx, _ := c.Begin(ctx)
			for i := range b.N {
				if err := write(tx); err != nil {
					b.Fatal(err)
				}
				if i%perTx == perTx-1 {
					tx.Commit(ctx)
					tx, _ = c.Begin(ctx)
				}
			}
			tx.Commit(ctx)
		}
		b.Run("outbox.Write", func(b *testing.B) {
			run(b, func(tx pgx.Tx) error { return w.Write(ctx, tx, ev) })
		})
		b.Run("plain-insert", func(b *testing.B) {
			run(b, func(tx pgx.Tx) error {
				id, _ := uuid.NewV7()
				_, err := tx.Exec(ctx, `INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) VALUES ($1, $2, $3, $4, $5)`,
					id.String(), ev.AggregateType, ev.AggregateID, ev.Type, string(ev.Payload))
				return err
			})
		})
	})

	b.Run("mariadb", func(b *testing.B) {
		db, err := sql.Open("mysql", "root@tcp("+testdb.MariaAddr+")/"+testdb.MariaDB(b, "outbox"))
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		w, _ := outbox.New(outbox.Config{Dialect: outbox.MySQL})
		if err := w.Migrate(ctx, db); err != nil {
			b.Fatal(err)
		}
		run := func(b *testing.B, write func(tx *sql.Tx) error) {
			tx, _ := db.BeginTx(ctx, nil)
			for i := range b.N {
				if err := write(tx); err != nil {
					b.Fatal(err)
				}
				if i%perTx == perTx-1 {
					tx.Commit()
					tx, _ = db.BeginTx(ctx, nil)
				}
			}
			tx.Commit()
		}
		b.Run("outbox.Write", func(b *testing.B) {
			run(b, func(tx *sql.Tx) error { return w.Write(ctx, tx, ev) })
		})
		b.Run("plain-insert", func(b *testing.B) {
			run(b, func(tx *sql.Tx) error {
				id, _ := uuid.NewV7()
				_, err := tx.ExecContext(ctx, "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) VALUES (?, ?, ?, ?, ?)",
					id.String(), ev.AggregateType, ev.AggregateID, ev.Type, string(ev.Payload))
				return err
			})
		})
	})
}
