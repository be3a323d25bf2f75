package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/eddy-cdc/eddy/connect"
	elog "github.com/eddy-cdc/eddy/log"
)

func (a *app) runCommand() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "run -c eddy.yaml",
		Short: "Run the server: the embedded log and the admin API",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) error {
			if path == "" {
				return usageError{errors.New("-c eddy.yaml is required")}
			}
			cfg, err := connect.LoadConfig(path)
			if err != nil {
				return usageError{err}
			}
			return a.serve(c.Context(), cfg)
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "", "the config file")
	return cmd
}

func (a *app) serve(ctx context.Context, cfg *connect.Config) error {
	logger := slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	l, err := elog.Open(cfg.DataDir, elog.WithDefaults(cfg.LogDefaults()), elog.WithLogger(logger))
	if err != nil {
		return err
	}
	defer l.Close()
	for _, t := range cfg.Topics {
		tc, _ := t.TopicConfig() // checked by LoadConfig
		if _, err := l.EnsureTopic(t.Name, tc); err != nil {
			return fmt.Errorf("declared topic %s: %w", t.Name, err)
		}
	}
	ln, err := net.Listen("tcp", cfg.API.Listen)
	if err != nil {
		return fmt.Errorf("admin API: %w", err)
	}
	srv := &http.Server{Handler: connect.NewAdminServer(connect.NewLocal(l), logger), ReadHeaderTimeout: 10 * time.Second}
	logger.Info("eddy running", "data_dir", cfg.DataDir, "admin_api", "http://"+ln.Addr().String(), "topics", len(l.Topics()))
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("admin API: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		logger.Warn("admin API did not drain in time", "err", err)
	}
	return l.Close()
}
