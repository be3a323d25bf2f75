// Command app is the outbox example's application: it places orders and
// pays some of them, each in a transaction that writes the business rows
// and their events together with the outbox library. A payment that
// fails rolls its whole transaction back: neither the payment nor its
// event exists.
//
//	go run ./examples/outbox/app -dsn postgres://postgres@127.0.0.1:5432/shop -orders 1000
//
// -mode message writes the events as transactional logical-decoding
// messages instead (no outbox table, nothing to clean up).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eddy-cdc/eddy/outbox"
)

func main() {
	dsn := flag.String("dsn", "postgres://postgres@127.0.0.1:5432/shop", "the shop database")
	orders := flag.Int("orders", 100, "orders to place")
	rate := flag.Int("rate", 200, "orders per second at most (0: as fast as it can)")
	mode := flag.String("mode", "table", "table (the outbox table) or message (logical-decoding messages)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *dsn, *orders, *rate, *mode); err != nil {
		slog.Error("app", "err", err)
		os.Exit(1)
	}
}

type order struct {
	ID       int64   `json:"id"`
	Customer string  `json:"customer"`
	Total    float64 `json:"total"`
	Status   string  `json:"status"`
}

func run(ctx context.Context, dsn string, n, rate int, mode string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.Background())
	cfg := outbox.Config{Dialect: outbox.Postgres}
	switch mode {
	case "table":
	case "message":
		cfg.Mode = outbox.ModeMessage
	default:
		return fmt.Errorf("-mode %q: table or message", mode)
	}
	events, err := outbox.New(cfg)
	if err != nil {
		return err
	}
	// Migrate makes the outbox table (Debezium's columns) if it is not
	// there; in message mode there is none to make.
	if err := events.Migrate(ctx, conn); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, `create table if not exists orders (
		id bigint primary key, customer text not null, total numeric(12,2) not null, status text not null)`); err != nil {
		return fmt.Errorf("create orders: %w", err)
	}
	var next int64
	if err := conn.QueryRow(ctx, "select coalesce(max(id), 0) + 1 from orders").Scan(&next); err != nil {
		return fmt.Errorf("read orders: %w", err)
	}
	var tick <-chan time.Time
	if rate > 0 {
		t := time.NewTicker(time.Second / time.Duration(rate))
		defer t.Stop()
		tick = t.C
	}
	placed, paid, failed := 0, 0, 0
	for i := range n {
		if tick != nil {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-tick:
			}
		}
		o := order{ID: next + int64(i), Customer: fmt.Sprintf("customer-%d", rand.IntN(50)), Total: float64(rand.IntN(100000)) / 100, Status: "placed"}
		if err := place(ctx, conn, events, o); err != nil {
			return err
		}
		placed++
		if rand.IntN(2) == 0 {
			ok, err := pay(ctx, conn, events, o)
			if err != nil {
				return err
			}
			if ok {
				paid++
			} else {
				failed++
			}
		}
	}
	fmt.Printf("placed %d orders, paid %d, %d payments rolled back\n", placed, paid, failed)
	return nil
}

// place inserts an order and its OrderPlaced event in one transaction.
func place(ctx context.Context, conn *pgx.Conn, events *outbox.Writer, o order) error {
	payload, err := json.Marshal(o)
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "insert into orders values ($1, $2, $3, $4)", o.ID, o.Customer, o.Total, o.Status); err != nil {
			return fmt.Errorf("insert order %d: %w", o.ID, err)
		}
		return events.Write(ctx, tx, outbox.Event{AggregateType: "order", AggregateID: strconv.FormatInt(o.ID, 10),
			Type: "OrderPlaced", Payload: payload, Headers: map[string]string{"source": "example-app"}})
	})
}

// pay marks an order paid with an OrderPaid and a PaymentTaken event; one
// payment in five fails after the events are written, and the rollback
// takes them with it.
func pay(ctx context.Context, conn *pgx.Conn, events *outbox.Writer, o order) (bool, error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "update orders set status = 'paid' where id = $1", o.ID); err != nil {
		return false, fmt.Errorf("pay order %d: %w", o.ID, err)
	}
	o.Status = "paid"
	payload, _ := json.Marshal(o)
	payment, _ := json.Marshal(map[string]any{"order": o.ID, "amount": o.Total})
	if err := events.Write(ctx, tx,
		outbox.Event{AggregateType: "order", AggregateID: strconv.FormatInt(o.ID, 10), Type: "OrderPaid", Payload: payload},
		outbox.Event{AggregateType: "payment", AggregateID: o.Customer, Type: "PaymentTaken", Payload: payment}); err != nil {
		return false, err
	}
	if rand.IntN(5) == 0 {
		return false, nil // the card was declined: the deferred rollback undoes the update and both events
	}
	if err := tx.Commit(ctx); err != nil {
		return false, fmt.Errorf("commit: %w", err)
	}
	return true, nil
}
