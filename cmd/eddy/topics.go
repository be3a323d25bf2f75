package main

import (
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/eddy-cdc/eddy/admin"
	"github.com/eddy-cdc/eddy/connect"
	elog "github.com/eddy-cdc/eddy/log"
)

func (a *app) topicsCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "topics", Short: "Create, list, describe and delete topics"}
	var spec connect.TopicSpec
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a topic",
		Args:  exactArgs(1, "the topic name"),
		RunE: func(c *cobra.Command, args []string) error {
			cfg, err := spec.TopicConfig()
			if err != nil {
				return usageError{err}
			}
			return a.withBroker(func(b admin.Broker) error {
				t, err := b.CreateTopic(c.Context(), args[0], cfg)
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "created topic %s with %d partitions (cleanup %s)\n", t.Name, len(t.Partitions), t.Config.Cleanup)
				return nil
			})
		},
	}
	f := create.Flags()
	f.IntVar(&spec.Partitions, "partitions", 1, "number of partitions")
	f.StringVar(&spec.Retention, "retention", "", "keep records this long (e.g. 168h; forever)")
	f.Int64Var(&spec.RetentionBytes, "retention-bytes", 0, "keep at most this many bytes per partition (-1: no limit)")
	f.StringVar(&spec.Cleanup, "cleanup", "", "delete | compact")
	f.Int64Var(&spec.SegmentBytes, "segment-bytes", 0, "roll segments at this size (default 1 GiB)")
	f.StringVar(&spec.SegmentAge, "segment-age", "", "roll segments at this age (default 168h)")
	f.StringVar(&spec.Fsync, "fsync", "", "always | interval | never (default always)")
	f.StringVar(&spec.Compression, "compression", "", "none | gzip | zstd")
	f.StringVar(&spec.DeleteRetention, "delete-retention", "", "how long compaction keeps tombstones (default 24h)")

	list := &cobra.Command{
		Use:   "list",
		Short: "List topics",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) error {
			return a.withBroker(func(b admin.Broker) error {
				ts, err := b.ListTopics(c.Context())
				if err != nil {
					return err
				}
				w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "TOPIC\tPARTITIONS\tCLEANUP\tRECORDS\tBYTES")
				for _, t := range ts {
					var recs, bytes int64
					for _, p := range t.Partitions {
						recs += p.HighWatermark - p.LogStartOffset
						bytes += p.Bytes
					}
					fmt.Fprintf(w, "%s\t%d\t%s\t%d\t%d\n", t.Name, len(t.Partitions), t.Config.Cleanup, recs, bytes)
				}
				return w.Flush()
			})
		},
	}
	describe := &cobra.Command{
		Use:   "describe NAME",
		Short: "Show a topic's config and partitions",
		Args:  exactArgs(1, "the topic name"),
		RunE: func(c *cobra.Command, args []string) error {
			return a.withBroker(func(b admin.Broker) error {
				t, err := b.DescribeTopic(c.Context(), args[0])
				if err != nil {
					return err
				}
				printTopic(a, t)
				return nil
			})
		},
	}
	del := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a topic and its data",
		Args:  exactArgs(1, "the topic name"),
		RunE: func(c *cobra.Command, args []string) error {
			return a.withBroker(func(b admin.Broker) error {
				if err := b.DeleteTopic(c.Context(), args[0]); err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "deleted topic %s\n", args[0])
				return nil
			})
		},
	}
	var restoreCfg, restoreStore string
	restore := &cobra.Command{
		Use:   "restore TOPIC --store NAME (-c eddy.yaml | --server URL)",
		Short: "Rebuild a topic from its archive, in a running eddy or a stopped one's data directory",
		Long: "Rebuilds TOPIC, absent from the log, from the archive in store NAME: its config, and every\n" +
			"archived record at its offset, read through the archive; appends go on after them. The config\n" +
			"must archive the topic to that store (log.archive or the topic's archive). With --server, the\n" +
			"running eddy restores it (admin API POST /topics/TOPIC/restore); with -c, the config's data\n" +
			"directory, with eddy run stopped.",
		Args: exactArgs(1, "the topic name"),
		RunE: func(c *cobra.Command, args []string) error {
			if restoreStore == "" {
				return usageError{fmt.Errorf("--store is required: the name of one of the config's stores")}
			}
			show := func(t admin.TopicInfo, from string) {
				fmt.Fprintf(a.stdout, "restored topic %s from %s:\n", t.Name, from)
				for i, p := range t.Partitions {
					fmt.Fprintf(a.stdout, "  partition %d: offsets %d..%d\n", i, p.LogStartOffset, p.HighWatermark)
				}
			}
			if restoreCfg == "" {
				if a.server == "" {
					return usageError{errors.New("say where to restore: -c eddy.yaml (eddy run stopped) or --server URL (running)")}
				}
				return a.withBroker(func(b admin.Broker) error {
					t, err := b.RestoreTopic(c.Context(), args[0], restoreStore)
					if err == nil {
						show(t, "store "+restoreStore)
					}
					return err
				})
			}
			cfg, err := loadConfig(restoreCfg)
			if err != nil {
				return err
			}
			stores, err := cfg.ArchiveStores(c.Context())
			if err != nil {
				return err
			}
			store := stores[restoreStore]
			if store == nil {
				return usageError{fmt.Errorf("--store %s: not one of the stores of %s", restoreStore, restoreCfg)}
			}
			l, err := elog.Open(cfg.DataDir, elog.WithDefaults(cfg.LogDefaults()), elog.WithArchive(cfg.ArchivePolicies(stores), cfg.ArchiveCacheBytes))
			if err != nil {
				return err
			}
			defer l.Close()
			t, err := l.RestoreTopic(c.Context(), args[0], store)
			if err != nil {
				return err
			}
			show(admin.TopicInfo{Name: t.Name(), Partitions: t.Stats()}, store.String())
			return nil
		},
	}
	restore.Flags().StringVarP(&restoreCfg, "config", "c", "", "the config file (its data_dir, stores and archive settings)")
	restore.Flags().StringVar(&restoreStore, "store", "", "the store to restore from")
	cmd.AddCommand(create, list, describe, del, restore)
	return cmd
}

func printTopic(a *app, t admin.TopicInfo) {
	c := t.Config
	retention := time.Duration(c.Retention).String()
	if c.Retention < 0 {
		retention = "forever"
	}
	fmt.Fprintf(a.stdout, "Topic: %s\nCreated: %s\nPartitions: %d\nCleanup: %s\nRetention: %s\nRetention bytes: %d\n"+
		"Segment bytes: %d\nSegment age: %s\nDelete retention: %s\nFsync: %s\nCompression: %s\nMax record bytes: %d\nMax batch bytes: %d\n",
		t.Name, t.Created.Format(time.RFC3339), len(t.Partitions), c.Cleanup, retention, c.RetentionBytes,
		c.SegmentBytes, time.Duration(c.SegmentAge), time.Duration(c.DeleteRetention), c.Fsync, c.Compression, c.MaxRecordBytes, c.MaxBatchBytes)
	archived := false
	for _, p := range t.Partitions {
		archived = archived || p.Archive != nil
	}
	w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	if !archived {
		fmt.Fprintln(w, "PARTITION\tLOG START\tHIGH WATERMARK\tSEGMENTS\tBYTES")
		for _, p := range t.Partitions {
			fmt.Fprintf(w, "%d\t%d\t%d\t%d\t%d\n", p.Partition, p.LogStartOffset, p.HighWatermark, p.Segments, p.Bytes)
		}
		w.Flush()
		return
	}
	// Local and archived ranges: [start, end) each.
	fmt.Fprintln(w, "PARTITION\tLOG START\tHIGH WATERMARK\tLOCAL\tLOCAL SEGMENTS\tLOCAL BYTES\tARCHIVED\tSTORE\tARCHIVED SEGMENTS\tARCHIVED BYTES\tPENDING")
	for _, p := range t.Partitions {
		ar := p.Archive
		if ar == nil {
			ar = &elog.ArchiveStats{}
		}
		arch := "-"
		if ar.Segments > 0 {
			arch = fmt.Sprintf("%d..%d", ar.Start, ar.End)
		}
		fmt.Fprintf(w, "%d\t%d\t%d\t%d..%d\t%d\t%d\t%s\t%s\t%d\t%d\t%d\n", p.Partition, p.LogStartOffset, p.HighWatermark,
			p.LocalStartOffset, p.HighWatermark, p.Segments, p.Bytes, arch, ar.Store, ar.Segments, ar.Bytes, ar.PendingSegments)
	}
	w.Flush()
}
