package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"github.com/eddy-cdc/eddy/admin"
	elog "github.com/eddy-cdc/eddy/log"
)

type consumeOpts struct {
	group     string
	from      string
	max       int64
	follow    bool
	format    string
	partition int
	session   time.Duration
	decode    string
}

func (a *app) consumeCommand() *cobra.Command {
	var o consumeOpts
	cmd := &cobra.Command{
		Use:   "consume TOPIC",
		Short: "Print a topic's records",
		Long: "Prints records from --from (default earliest) up to the end of the topic as it stood when\n" +
			"the command started, or on and on with --follow. With --group the command is a member of\n" +
			"that consumer group: it reads the partitions the group gives it, starts from the group's\n" +
			"committed offsets (--from applies where there are none) and commits what it has printed.",
		Args: exactArgs(1, "the topic name"),
		RunE: func(c *cobra.Command, args []string) error {
			if o.format != "json" && o.format != "value" {
				return usageError{fmt.Errorf("--format %q: want json or value", o.format)}
			}
			if o.decode != "auto" && o.decode != "none" {
				return usageError{fmt.Errorf("--decode %q: want auto or none", o.decode)}
			}
			spec, err := elog.ParseOffsetSpec(o.from)
			if err != nil {
				return usageError{fmt.Errorf("--from: %w", err)}
			}
			return a.withBroker(func(b admin.Broker) error {
				cons := &consumer{a: a, b: b, topic: args[0], opts: o, spec: spec, out: bufio.NewWriterSize(a.stdout, 256<<10)}
				if o.decode == "auto" {
					cons.wire = a.wireDecoder(c.Context(), b)
				}
				err := cons.run(c.Context())
				if ferr := cons.out.Flush(); err == nil {
					err = ferr
				}
				if errors.Is(err, context.Canceled) {
					return nil // interrupted: what was printed is committed
				}
				return err
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.group, "group", "", "consume as a member of this consumer group, committing offsets")
	f.StringVar(&o.from, "from", "earliest", "where to start: earliest | latest | offset:N | time:RFC3339")
	f.Int64Var(&o.max, "max", 0, "stop after this many records (0: no limit)")
	f.BoolVar(&o.follow, "follow", false, "keep waiting for new records")
	f.StringVar(&o.format, "format", "json", "json (one object a line) | value (the raw value a line)")
	f.IntVar(&o.partition, "partition", -1, "read only this partition (not with --group)")
	f.DurationVar(&o.session, "session-timeout", 10*time.Second, "group session timeout")
	f.StringVar(&o.decode, "decode", "auto", "auto: show Confluent wire-format (Avro) keys and values as JSON, using the schema registry | none: show bytes as they are")
	f.StringVar(&a.registry, "registry", os.Getenv("EDDY_REGISTRY"), "schema registry URL for --decode with --server (default: the --server host on :8081) [$EDDY_REGISTRY]")
	return cmd
}

type cursor struct {
	tp   elog.TopicPartition
	next int64
	end  int64 // without --follow: stop here
}

type consumer struct {
	a     *app
	b     admin.Broker
	topic string
	opts  consumeOpts
	spec  elog.OffsetSpec
	out   *bufio.Writer
	count int64

	member     string
	generation int
	lastBeat   time.Time

	wire *wireDecoder // nil: print bytes as they are
}

func (c *consumer) run(ctx context.Context) error {
	info, err := c.b.DescribeTopic(ctx, c.topic)
	if err != nil {
		return err
	}
	if c.opts.group == "" {
		var tps []elog.TopicPartition
		for _, p := range info.Partitions {
			if c.opts.partition < 0 || p.Partition == c.opts.partition {
				tps = append(tps, elog.TopicPartition{Topic: c.topic, Partition: p.Partition})
			}
		}
		if len(tps) == 0 {
			return usageError{fmt.Errorf("--partition %d: %s has %d partitions", c.opts.partition, c.topic, len(info.Partitions))}
		}
		cursors, err := c.cursors(ctx, tps, nil)
		if err != nil {
			return err
		}
		_, err = c.loop(ctx, cursors)
		return err
	}
	if c.opts.partition >= 0 {
		return usageError{errors.New("--partition and --group do not go together: the group assigns partitions")}
	}
	defer func() {
		if c.member != "" {
			lctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			c.b.LeaveGroup(lctx, c.opts.group, c.member)
			cancel()
		}
	}()
	for {
		a, err := c.b.JoinGroup(ctx, c.opts.group, elog.JoinRequest{MemberID: c.member, ClientID: "eddy-consume", Topics: []string{c.topic}, SessionTimeout: c.opts.session})
		if errors.Is(err, elog.ErrUnknownMember) && c.member != "" {
			c.member = "" // our session lapsed: join afresh
			continue
		}
		if err != nil {
			return err
		}
		c.member, c.generation, c.lastBeat = a.MemberID, a.Generation, time.Now()
		committed, err := c.b.Committed(ctx, c.opts.group)
		if err != nil {
			return err
		}
		cursors, err := c.cursors(ctx, a.Partitions, committed)
		if err != nil {
			return err
		}
		rejoin, err := c.loop(ctx, cursors)
		if err != nil || !rejoin {
			return err
		}
	}
}

func (c *consumer) cursors(ctx context.Context, tps []elog.TopicPartition, committed map[elog.TopicPartition]elog.OffsetCommit) ([]*cursor, error) {
	var out []*cursor
	for _, tp := range tps {
		cur := &cursor{tp: tp}
		var err error
		if v, ok := committed[tp]; ok {
			cur.next = v.Offset
		} else if cur.next, err = c.b.Resolve(ctx, tp.Topic, tp.Partition, c.spec); err != nil {
			return nil, err
		}
		if cur.end, err = c.b.Resolve(ctx, tp.Topic, tp.Partition, elog.OffsetSpec{Kind: "latest"}); err != nil {
			return nil, err
		}
		out = append(out, cur)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].tp.Partition < out[j].tp.Partition })
	return out, nil
}

// loop reads the cursors round-robin until they are done (or forever with
// --follow). It reports rejoin when the group is rebalancing.
func (c *consumer) loop(ctx context.Context, cursors []*cursor) (rejoin bool, err error) {
	var recs []elog.Record
	for {
		progressed, active := false, 0
		for _, cur := range cursors {
			if c.opts.max > 0 && c.count >= c.opts.max {
				return false, nil
			}
			if !c.opts.follow && cur.next >= cur.end {
				continue
			}
			active++
			wait := time.Duration(0)
			if c.opts.follow && !progressed {
				wait = 200 * time.Millisecond / time.Duration(len(cursors))
			}
			res, err := c.b.Fetch(ctx, cur.tp.Topic, cur.tp.Partition, cur.next, 1<<20, wait)
			if errors.Is(err, elog.ErrOffsetOutOfRange) {
				start, rerr := c.b.Resolve(ctx, cur.tp.Topic, cur.tp.Partition, elog.OffsetSpec{Kind: "earliest"})
				if rerr != nil {
					return false, rerr
				}
				if start > cur.next {
					fmt.Fprintf(c.a.stderr, "eddy: %s: offset %d is gone (retention); going on from %d\n", cur.tp, cur.next, start)
					cur.next = start
					continue
				}
				return false, err
			}
			if err != nil {
				return false, err
			}
			if recs, err = elog.DecodeBatches(recs[:0], res.Data, cur.next); err != nil {
				return false, fmt.Errorf("%s at %d: %w", cur.tp, cur.next, err)
			}
			next := res.NextOffset
			for i := range recs {
				if c.opts.max > 0 && c.count >= c.opts.max {
					next = recs[i].Offset
					break
				}
				if !c.opts.follow && recs[i].Offset >= cur.end {
					next = recs[i].Offset
					break
				}
				if err := c.print(cur.tp, &recs[i]); err != nil {
					return false, err
				}
				c.count++
			}
			if next > cur.next {
				progressed = true
				cur.next = next
				if err := c.commit(ctx, cur); err != nil {
					if errors.Is(err, elog.ErrRebalanceInProgress) || errors.Is(err, elog.ErrIllegalGeneration) || errors.Is(err, elog.ErrNotAssigned) {
						return true, nil
					}
					return false, err
				}
			}
		}
		if active == 0 {
			return false, nil
		}
		if err := c.heartbeat(ctx); err != nil {
			if errors.Is(err, elog.ErrRebalanceInProgress) || errors.Is(err, elog.ErrIllegalGeneration) || errors.Is(err, elog.ErrUnknownMember) {
				return true, nil
			}
			return false, err
		}
		if err := ctx.Err(); err != nil {
			return false, err
		}
	}
}

// decodedRecord is a record whose key or value was Avro in the wire format:
// shown as the JSON it decodes to, with the schema id beside it.
type decodedRecord struct {
	admin.RecordJSON
	Key         any `json:"key"`
	Value       any `json:"value"`
	KeySchema   int `json:"key_schema_id,omitempty"`
	ValueSchema int `json:"value_schema_id,omitempty"`
}

func (c *consumer) print(tp elog.TopicPartition, r *elog.Record) error {
	j := admin.ToRecordJSON(tp.Topic, tp.Partition, r)
	if c.opts.format == "value" {
		if js, _, ok := c.wire.decode(r.Value); ok {
			c.out.Write(js)
		} else {
			c.out.Write(r.Value)
		}
		return c.out.WriteByte('\n')
	}
	var rec any = j
	kjs, kid, kok := c.wire.decode(r.Key)
	vjs, vid, vok := c.wire.decode(r.Value)
	if kok || vok {
		d := decodedRecord{RecordJSON: j, Key: j.Key, Value: j.Value}
		if kok {
			d.Key, d.KeySchema, d.RecordJSON.KeyEncoding = json.RawMessage(kjs), kid, ""
		}
		if vok {
			d.Value, d.ValueSchema, d.RecordJSON.ValueEncoding = json.RawMessage(vjs), vid, ""
		}
		rec = d
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	c.out.Write(b)
	return c.out.WriteByte('\n')
}

// commit makes what was printed visible first, then commits it: a record is
// committed only after it has reached stdout.
func (c *consumer) commit(ctx context.Context, cur *cursor) error {
	if c.opts.group == "" {
		return nil
	}
	if err := c.out.Flush(); err != nil {
		return fmt.Errorf("writing records: %w", err)
	}
	if f, ok := c.a.stdout.(interface{ Sync() error }); ok {
		f.Sync() // best effort: a pipe cannot sync
	}
	c.lastBeat = time.Now()
	return c.b.Commit(ctx, c.opts.group, c.member, c.generation, map[elog.TopicPartition]int64{cur.tp: cur.next})
}

func (c *consumer) heartbeat(ctx context.Context) error {
	if c.opts.group == "" || time.Since(c.lastBeat) < c.opts.session/5 {
		return nil
	}
	c.lastBeat = time.Now()
	return c.b.Heartbeat(ctx, c.opts.group, c.member, c.generation)
}
