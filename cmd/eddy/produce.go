package main

import (
	"bufio"
	"bytes"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/eddy-cdc/eddy/admin"
	elog "github.com/eddy-cdc/eddy/log"
)

func (a *app) produceCommand() *cobra.Command {
	var sep string
	var batch, batchBytes int
	cmd := &cobra.Command{
		Use:   "produce TOPIC",
		Short: "Append stdin to a topic, one record a line; exits 0 once all are durable",
		Long: "Reads stdin one record a line. With --key-separator, the part of each line before the\n" +
			"first separator is the key and the rest the value; a line without it is an error.\n" +
			"Records go to partitions as Kafka's default partitioner would place them.",
		Args: exactArgs(1, "the topic name"),
		RunE: func(c *cobra.Command, args []string) error {
			if batch < 1 || batchBytes < 1 {
				return usageError{fmt.Errorf("--batch and --batch-bytes must be positive")}
			}
			return a.withBroker(func(b admin.Broker) error {
				topic := args[0]
				if _, err := b.DescribeTopic(c.Context(), topic); err != nil {
					return err
				}
				sc := bufio.NewScanner(a.stdin)
				sc.Buffer(make([]byte, 64<<10), 64<<20)
				var recs []elog.Record
				size, line, total := 0, 0, 0
				flush := func() error {
					if len(recs) == 0 {
						return nil
					}
					if _, err := b.Produce(c.Context(), topic, recs); err != nil {
						return fmt.Errorf("produce to %s (lines %d..%d): %w", topic, line-len(recs)+1, line, err)
					}
					total += len(recs)
					recs, size = recs[:0], 0
					return nil
				}
				for sc.Scan() {
					line++
					text := append([]byte(nil), sc.Bytes()...)
					r := elog.Record{Value: text}
					if sep != "" {
						k, v, ok := bytes.Cut(text, []byte(sep))
						if !ok {
							return fmt.Errorf("stdin line %d: no key separator %q", line, sep)
						}
						r.Key, r.Value = k, v
					}
					recs = append(recs, r)
					size += len(text)
					if len(recs) >= batch || size >= batchBytes {
						if err := flush(); err != nil {
							return err
						}
					}
				}
				if err := sc.Err(); err != nil {
					return fmt.Errorf("reading stdin after line %d: %w", line, err)
				}
				if err := flush(); err != nil {
					return err
				}
				fmt.Fprintf(a.stderr, "produced %d records to %s\n", total, topic)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&sep, "key-separator", "", "split each line into key and value at the first SEP")
	cmd.Flags().IntVar(&batch, "batch", 1000, "records per append")
	cmd.Flags().IntVar(&batchBytes, "batch-bytes", 1<<20, "bytes per append")
	return cmd
}
