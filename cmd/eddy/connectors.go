package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/eddy-cdc/eddy/admin"
	"github.com/eddy-cdc/eddy/connect"
)

// client is the admin API client of --server (default the local
// server's port).
func (a *app) client() (*admin.Client, error) {
	if a.dataDir != "" {
		return nil, usageError{fmt.Errorf("connectors live in a running `eddy run`: use --server, not --data-dir")}
	}
	server := a.server
	if server == "" {
		server = "http://127.0.0.1:8083"
	}
	hc, err := a.httpClient()
	if err != nil {
		return nil, err
	}
	return admin.NewClient(server, a.token, admin.WithHTTPClient(hc), admin.WithUserInfo(a.user))
}

func (a *app) connectorsCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "connectors", Short: "List and steer the connectors of a running server (--server, default http://127.0.0.1:8083)"}
	list := &cobra.Command{
		Use:   "list",
		Short: "List connectors with their state",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			sts, err := cl.ConnectorStatuses(c.Context())
			if err != nil {
				return err
			}
			names := make([]string, 0, len(sts))
			for n := range sts {
				names = append(names, n)
			}
			sort.Strings(names)
			w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tTYPE\tSTATE\tTASK")
			for _, n := range names {
				st := sts[n]
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", n, st.Type, st.Connector.State, st.Tasks[0].State)
			}
			return w.Flush()
		},
	}
	status := &cobra.Command{
		Use:   "status NAME",
		Short: "Show a connector's state, its task's state and error, and its schedule",
		Args:  exactArgs(1, "the connector name"),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			st, err := cl.ConnectorStatus(c.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Connector: %s (%s)\nState: %s\n", st.Name, st.Type, st.Connector.State)
			for _, t := range st.Tasks {
				fmt.Fprintf(a.stdout, "Task %d: %s on %s\n", t.ID, t.State, t.WorkerID)
				if t.Trace != "" {
					fmt.Fprintf(a.stdout, "  %s\n", strings.ReplaceAll(strings.TrimSpace(t.Trace), "\n", "\n  "))
				}
			}
			if st.Schedule != nil {
				fmt.Fprintf(a.stdout, "Schedule: %s, next run %s\n", st.Schedule.Cron, st.Schedule.NextRun.Format("2006-01-02T15:04:05Z07:00"))
			}
			return nil
		},
	}
	cmd.AddCommand(list, status)
	for _, action := range []struct{ name, short string }{
		{"pause", "Pause a connector's task between batches"},
		{"resume", "Resume a paused connector, or start a stopped one"},
		{"restart", "Restart a connector's task (how a FAILED task comes back)"},
		{"stop", "Stop a connector's task (drained) until resumed; its offsets may then be reset"},
	} {
		cmd.AddCommand(&cobra.Command{
			Use:   action.name + " NAME",
			Short: action.short,
			Args:  exactArgs(1, "the connector name"),
			RunE: func(c *cobra.Command, args []string) error {
				cl, err := a.client()
				if err != nil {
					return err
				}
				if err := cl.ControlConnector(c.Context(), args[0], action.name); err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "%s: %s requested\n", args[0], action.name)
				return nil
			},
		})
	}
	var reset bool
	offsets := &cobra.Command{
		Use:   "offsets NAME [--reset]",
		Short: "Show a connector's stored position (source) or committed offsets (sink); --reset forgets them (the connector must be stopped)",
		Args:  exactArgs(1, "the connector name"),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			if reset {
				if err := cl.ResetConnectorOffsets(c.Context(), args[0]); err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "%s: offsets reset\n", args[0])
				return nil
			}
			o, err := cl.ConnectorOffsets(c.Context(), args[0])
			if err != nil {
				return err
			}
			enc := json.NewEncoder(a.stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(o)
		},
	}
	offsets.Flags().BoolVar(&reset, "reset", false, "reset the offsets (the connector must be stopped)")
	cmd.AddCommand(offsets, a.deleteConnectorCommand())
	return cmd
}

func (a *app) deleteConnectorCommand() *cobra.Command {
	var release, keep bool
	del := &cobra.Command{
		Use:   "delete NAME [--release | --keep]",
		Short: "Remove a connector from the running server (remove it from eddy.yaml too); a source holding a replication slot needs --release (drop it) or --keep",
		Args:  exactArgs(1, "the connector name"),
		RunE: func(c *cobra.Command, args []string) error {
			if release && keep {
				return fmt.Errorf("delete %s: --release and --keep exclude each other", args[0])
			}
			var choice *bool
			if release || keep {
				choice = &release
			}
			cl, err := a.client()
			if err != nil {
				return err
			}
			res, err := cl.DeleteConnector(c.Context(), args[0], choice)
			if errors.Is(err, connect.ErrHoldsUpstream) {
				return fmt.Errorf("%w\n(run again with --release to drop it, or --keep to keep it)", err)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "%s: deleted; %s\n", res.Name, res.Note)
			for _, h := range res.Held {
				what := "kept (reported as an orphan while it retains WAL)"
				if h.Released {
					what = "dropped"
				}
				fmt.Fprintf(a.stdout, "  %s, retaining %d bytes: %s\n", h.Name, h.RetainedBytes, what)
			}
			return nil
		},
	}
	del.Flags().BoolVar(&release, "release", false, "drop what the source holds upstream (its replication slot)")
	del.Flags().BoolVar(&keep, "keep", false, "keep what the source holds upstream")
	return del
}

func (a *app) pluginsCommand() *cobra.Command {
	var markdown bool
	cmd := &cobra.Command{
		Use:   "plugins [NAME]",
		Short: "Print the plugin catalog, or one plugin's parameters (--markdown: docs/plugins.md)",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageError{fmt.Errorf("want at most one plugin name, got %d arguments", len(args))}
			}
			return nil
		},
		RunE: func(_ *cobra.Command, args []string) error {
			cat, err := connect.BuiltinCatalog()
			if err != nil {
				return err
			}
			if markdown {
				_, err := a.stdout.Write(cat.Markdown())
				return err
			}
			if len(args) == 0 {
				w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "NAME\tKIND\tDESCRIPTION")
				for _, p := range cat.Plugins {
					d := p.Description
					if i := strings.Index(d, ". "); i > 0 {
						d = d[:i+1]
					}
					fmt.Fprintf(w, "%s\t%s\t%s\n", p.Name, p.Kind, d)
				}
				return w.Flush()
			}
			p := cat.Plugin(args[0])
			if p == nil {
				return usageError{fmt.Errorf("no plugin %q (plugins: %s)", args[0], strings.Join(cat.Names(""), ", "))}
			}
			fmt.Fprintf(a.stdout, "%s (%s)\n\n%s\n\n", p.Name, p.Kind, p.Description)
			w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "PARAMETER\tTYPE\tDEFAULT\tDOC")
			for _, prm := range p.Params {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", prm.Name, prm.TypeText(), prm.DefaultText(), strings.Join(strings.Fields(prm.Doc), " "))
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVar(&markdown, "markdown", false, "print the catalog as Markdown (docs/plugins.md is this output)")
	return cmd
}
