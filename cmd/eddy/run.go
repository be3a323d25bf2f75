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

	"github.com/eddy-cdc/eddy/admin"
	"github.com/eddy-cdc/eddy/connect"
	"github.com/eddy-cdc/eddy/internal/access"
	elog "github.com/eddy-cdc/eddy/log"
	"github.com/eddy-cdc/eddy/registry"
)

func (a *app) runCommand() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "run -c eddy.yaml",
		Short: "Run the server: the embedded log and the admin API",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) error {
			cfg, err := loadConfig(path)
			if err != nil {
				return err
			}
			return a.serve(c.Context(), cfg)
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "", "the config file")
	return cmd
}

// loadConfig reads -c FILE; a missing flag or a bad file is a usage error
// (exit 2).
func loadConfig(path string) (*connect.Config, error) {
	if path == "" {
		return nil, usageError{errors.New("-c eddy.yaml is required")}
	}
	cfg, err := connect.LoadConfig(path)
	if err != nil {
		return nil, usageError{err}
	}
	return cfg, nil
}

func (a *app) validateCommand() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "validate -c eddy.yaml",
		Short: "Check a config file without starting anything (exit 2 on an error)",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(_ *cobra.Command, _ []string) error {
			cfg, err := loadConfig(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "%s: ok (data_dir %s, %d topics, %d connectors, %d jobs)\n", path, cfg.DataDir, len(cfg.Topics), len(cfg.Connectors), len(cfg.Jobs))
			return nil
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "", "the config file")
	return cmd
}

func (a *app) serve(ctx context.Context, cfg *connect.Config) error {
	logger := slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	lopts := []elog.Option{elog.WithDefaults(cfg.LogDefaults()), elog.WithLogger(logger)}
	var stores map[string]elog.ArchiveStore
	if cfg.Archived() {
		var err error
		if stores, err = cfg.ArchiveStores(ctx); err != nil {
			return err
		}
		lopts = append(lopts, elog.WithArchive(cfg.ArchivePolicies(stores), cfg.ArchiveCacheBytes))
	}
	l, err := elog.Open(cfg.DataDir, lopts...)
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
	reg, err := registry.Open(ctx, l)
	if err != nil {
		return stoppedWhileStarting(ctx, logger, err)
	}
	wopts := []connect.WorkerOption{connect.WithWorkerLogger(logger), connect.WithTopicDefaults(cfg.LogDefaults())}
	if protect, bound := cfg.RetentionProtection(); protect {
		wopts = append(wopts, connect.WithRetentionProtection(bound))
	}
	worker, err := connect.NewWorker(ctx, l, registry.NewSerde(registry.Local(reg)), builtinPlugins(), wopts...)
	if err != nil {
		return stoppedWhileStarting(ctx, logger, err)
	}
	// Stop order: the listeners, then the tasks (each drains its batch),
	// then the log (deferred above).
	drained := false
	defer func() {
		if drained {
			return
		}
		sctx, cancel := context.WithTimeout(context.Background(), cfg.Shutdown())
		defer cancel()
		worker.Close(sctx)
	}()
	servers := []struct {
		name, key string
		listener  connect.ListenerConfig
		handler   http.Handler
	}{
		{"admin API", "admin_api", cfg.API, admin.NewServer(&admin.LocalBroker{Log: l, Stores: stores}, logger,
			admin.WithUsers(cfg.API.Credentials()), admin.WithWorker(worker, cfg.Catalog()))},
		{"schema registry", "schema_registry", cfg.Registry, registry.NewAPI(reg, logger, registry.WithUsers(cfg.Registry.Credentials()))},
	}
	errc := make(chan error, len(servers))
	var running []*http.Server
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, srv := range running {
			if err := srv.Shutdown(sctx); err != nil {
				logger.Warn("server did not drain in time", "err", err)
			}
		}
	}()
	addrs := []any{"data_dir", cfg.DataDir, "topics", len(l.Topics())}
	for _, s := range servers {
		tlsCfg, err := s.listener.TLS().Config()
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		if !s.listener.Authenticated() && !access.Loopback(s.listener.Listen) {
			logger.Warn("a listener that asks for no credentials is bound beyond this machine: anyone who reaches it may use it; set users (or a token), or listen on 127.0.0.1",
				"listener", s.name, "listen", s.listener.Listen)
		}
		ln, err := net.Listen("tcp", s.listener.Listen)
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		srv := &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second, TLSConfig: tlsCfg,
			ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
		running = append(running, srv)
		scheme := "http://"
		if tlsCfg != nil {
			scheme = "https://"
		}
		go func() {
			var err error
			if tlsCfg != nil {
				err = srv.ServeTLS(ln, "", "")
			} else {
				err = srv.Serve(ln)
			}
			if !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("%s: %w", s.name, err)
			}
		}()
		addrs = append(addrs, s.key, scheme+ln.Addr().String())
	}
	for _, c := range cfg.Connectors {
		if err := worker.Add(c); err != nil {
			return err
		}
	}
	for _, j := range cfg.Jobs {
		if err := worker.AddJob(j); err != nil {
			return err
		}
	}
	addrs = append(addrs, "connectors", len(cfg.Connectors), "jobs", len(cfg.Jobs))
	logger.Info("eddy running", addrs...)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down: draining tasks", "timeout", cfg.Shutdown())
	sctx, cancel := context.WithTimeout(context.Background(), cfg.Shutdown())
	defer cancel()
	drained = true
	if err := worker.Close(sctx); err != nil {
		logger.Warn("shutdown", "err", err)
	}
	logger.Info("stopped")
	return nil
}

// stoppedWhileStarting turns a start interrupted by SIGTERM into a clean
// stop: nothing was acknowledged yet, so there is nothing to drain.
func stoppedWhileStarting(ctx context.Context, logger *slog.Logger, err error) error {
	if ctx.Err() != nil {
		logger.Info("stopped while starting")
		return nil
	}
	return err
}
