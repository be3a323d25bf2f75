package main

import (
	"fmt"
	"sort"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/eddy-cdc/eddy/admin"
	elog "github.com/eddy-cdc/eddy/log"
)

func (a *app) groupsCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "groups", Short: "List, describe and reset consumer groups"}
	list := &cobra.Command{
		Use:  "list",
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) error {
			return a.withBroker(func(b admin.Broker) error {
				gs, err := b.ListGroups(c.Context())
				if err != nil {
					return err
				}
				for _, g := range gs {
					fmt.Fprintln(a.stdout, g)
				}
				return nil
			})
		},
	}
	describe := &cobra.Command{
		Use:   "describe GROUP",
		Short: "Show a group's state, members, committed offsets and lag",
		Args:  exactArgs(1, "the group name"),
		RunE: func(c *cobra.Command, args []string) error {
			return a.withBroker(func(b admin.Broker) error {
				d, err := b.DescribeGroup(c.Context(), args[0])
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "Group: %s\nState: %s\nGeneration: %d\nMembers: %d\n", d.Group, d.State, d.Generation, len(d.Members))
				for _, m := range d.Members {
					fmt.Fprintf(a.stdout, "  %s %v\n", m.MemberID, m.Assignment)
				}
				w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "TOPIC\tPARTITION\tCOMMITTED\tHIGH WATERMARK\tLAG")
				for _, o := range d.Offsets {
					fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\n", o.Topic, o.Partition, o.Committed, o.HighWatermark, o.Lag)
				}
				return w.Flush()
			})
		},
	}
	var topic, to string
	reset := &cobra.Command{
		Use:   "reset GROUP --topic T --to earliest|latest|offset:N|time:RFC3339",
		Short: "Move a group's committed offsets for a topic (the group must have no members)",
		Args:  exactArgs(1, "the group name"),
		RunE: func(c *cobra.Command, args []string) error {
			if topic == "" || to == "" {
				return usageError{fmt.Errorf("--topic and --to are required")}
			}
			spec, err := elog.ParseOffsetSpec(to)
			if err != nil {
				return usageError{fmt.Errorf("--to: %w", err)}
			}
			return a.withBroker(func(b admin.Broker) error {
				res, err := b.ResetGroup(c.Context(), args[0], topic, spec)
				if err != nil {
					return err
				}
				tps := make([]elog.TopicPartition, 0, len(res))
				for tp := range res {
					tps = append(tps, tp)
				}
				sort.Slice(tps, func(i, j int) bool { return tps[i].Partition < tps[j].Partition })
				for _, tp := range tps {
					fmt.Fprintf(a.stdout, "%s\t%d\n", tp, res[tp])
				}
				return nil
			})
		},
	}
	reset.Flags().StringVar(&topic, "topic", "", "the topic whose offsets move")
	reset.Flags().StringVar(&to, "to", "", "earliest | latest | offset:N | time:RFC3339")
	cmd.AddCommand(list, describe, reset)
	return cmd
}
