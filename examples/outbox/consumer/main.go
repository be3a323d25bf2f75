// Command consumer is the outbox example's consumer: it joins a consumer
// group on Eddy's admin API, reads the outbox events of the partitions the
// group gives it from the group's committed offsets, prints each, and
// commits after it. An event can come twice (a consumer that dies between
// handling and committing reads it again), so it is handled only once per
// eddy.event_id, the header the outbox transform sets.
//
//	go run ./examples/outbox/consumer -server http://127.0.0.1:8083
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"time"
)

func main() {
	server := flag.String("server", "http://127.0.0.1:8083", "Eddy's admin API")
	group := flag.String("group", "order-emails", "the consumer group")
	topics := flag.String("topics", "outbox.event.order,outbox.event.payment", "topics, comma-separated")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	c := &consumer{api: strings.TrimRight(*server, "/"), group: *group, topics: strings.Split(*topics, ","), seen: newSeen(100000)}
	if err := c.run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		slog.Error("consumer", "err", err)
		os.Exit(1)
	}
}

type topicPartition struct {
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
}

type assignment struct {
	MemberID   string           `json:"member_id"`
	Generation int              `json:"generation"`
	Partitions []topicPartition `json:"partitions"`
}

type record struct {
	Partition int     `json:"partition"`
	Offset    int64   `json:"offset"`
	Key       *string `json:"key"`
	Value     *string `json:"value"`
	Headers   []struct {
		Key   string  `json:"key"`
		Value *string `json:"value"`
	} `json:"headers"`
}

func (r record) header(k string) string {
	for _, h := range r.Headers {
		if h.Key == k && h.Value != nil {
			return *h.Value
		}
	}
	return ""
}

type consumer struct {
	api, group string
	topics     []string
	seen       *seen
	member     string
	gen        int
}

func (c *consumer) run(ctx context.Context) error {
	defer c.leave()
	for {
		var a assignment
		if err := c.call(ctx, "POST", "/groups/"+c.group+"/members",
			map[string]any{"member_id": c.member, "client_id": "outbox-example", "topics": c.topics, "session_timeout_ms": 30000}, &a); err != nil {
			return fmt.Errorf("join %s: %w", c.group, err)
		}
		c.member, c.gen = a.MemberID, a.Generation
		slog.Info("joined", "group", c.group, "generation", a.Generation, "partitions", a.Partitions)
		err := c.consume(ctx, a.Partitions)
		if !errors.Is(err, errRebalance) {
			return err
		}
	}
}

var errRebalance = errors.New("the group is rebalancing")

// consume reads the assigned partitions until the group rebalances.
func (c *consumer) consume(ctx context.Context, parts []topicPartition) error {
	next, err := c.committed(ctx)
	if err != nil {
		return err
	}
	beat := time.Now()
	for {
		got := 0
		for _, tp := range parts {
			var res struct {
				Records    []record `json:"records"`
				NextOffset int64    `json:"next_offset"`
			}
			q := url.Values{"offset": {fmt.Sprint(next[tp])}, "wait_ms": {"200"}}
			if err := c.call(ctx, "GET", fmt.Sprintf("/topics/%s/partitions/%d/records?%s", tp.Topic, tp.Partition, q.Encode()), nil, &res); err != nil {
				return fmt.Errorf("fetch %s/%d: %w", tp.Topic, tp.Partition, err)
			}
			for _, r := range res.Records {
				c.handle(tp.Topic, r)
			}
			got += len(res.Records)
			if res.NextOffset > next[tp] {
				next[tp] = res.NextOffset
				err := c.call(ctx, "POST", "/groups/"+c.group+"/offsets", map[string]any{"member_id": c.member, "generation": c.gen,
					"offsets": []map[string]any{{"topic": tp.Topic, "partition": tp.Partition, "offset": res.NextOffset}}}, nil)
				if err != nil {
					return c.rebalanced(fmt.Errorf("commit %s/%d: %w", tp.Topic, tp.Partition, err))
				}
			}
		}
		if time.Since(beat) > 3*time.Second || got == 0 {
			beat = time.Now()
			if err := c.call(ctx, "POST", "/groups/"+c.group+"/members/"+c.member+"/heartbeat", map[string]any{"generation": c.gen}, nil); err != nil {
				return c.rebalanced(fmt.Errorf("heartbeat: %w", err))
			}
		}
	}
}

// handle is the application's work: here, printing the event once.
func (c *consumer) handle(topic string, r record) {
	id := r.header("eddy.event_id")
	if !c.seen.add(id) {
		slog.Info("duplicate event skipped", "id", id)
		return
	}
	key, value := "", ""
	if r.Key != nil {
		key = *r.Key
	}
	if r.Value != nil {
		value = *r.Value
	}
	fmt.Printf("%s key=%s type=%s id=%s %s\n", topic, key, r.header("type"), id, value)
}

// committed is where the group left each partition (0 where it has not
// committed).
func (c *consumer) committed(ctx context.Context) (map[topicPartition]int64, error) {
	var offs []struct {
		topicPartition
		Offset int64 `json:"offset"`
	}
	if err := c.call(ctx, "GET", "/groups/"+c.group+"/offsets", nil, &offs); err != nil {
		return nil, fmt.Errorf("committed offsets: %w", err)
	}
	out := map[topicPartition]int64{}
	for _, o := range offs {
		out[o.topicPartition] = o.Offset
	}
	return out, nil
}

func (c *consumer) rebalanced(err error) error {
	var he *httpError
	switch {
	case errors.As(err, &he) && he.status == http.StatusConflict:
		return errRebalance // join again
	case errors.As(err, &he) && he.status == http.StatusNotFound:
		c.member = "" // the session expired: join as a new member
		return errRebalance
	}
	return err
}

func (c *consumer) leave() {
	if c.member != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.call(ctx, "DELETE", "/groups/"+c.group+"/members/"+c.member, nil, nil)
	}
}

type httpError struct {
	status int
	body   string
}

func (e *httpError) Error() string { return fmt.Sprintf("%d: %s", e.status, e.body) }

func (c *consumer) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.api+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		return &httpError{resp.StatusCode, strings.TrimSpace(string(b))}
	}
	if out == nil || len(b) == 0 {
		return nil
	}
	return json.Unmarshal(b, out)
}

// seen remembers the last n event ids.
type seen struct {
	ids   map[string]bool
	order []string
	n     int
}

func newSeen(n int) *seen { return &seen{ids: map[string]bool{}, n: n} }

func (s *seen) add(id string) bool {
	if id == "" || s.ids[id] {
		return id == ""
	}
	s.ids[id] = true
	s.order = append(s.order, id)
	if len(s.order) > s.n {
		delete(s.ids, s.order[0])
		s.order = s.order[1:]
	}
	return true
}
