package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/eddy-cdc/eddy/connect"
)

// Connectors is what the API needs of the worker that runs connectors and
// jobs (*connect.Worker).
type Connectors interface {
	Connectors() []string
	Status(name string) (connect.ConnectorStatus, error)
	Info(name string) (connect.ConnectorInfo, error)
	Pause(name string) error
	Resume(name string) error
	Stop(ctx context.Context, name string) error
	Restart(ctx context.Context, name string) error
	Offsets(name string) (connect.ConnectorOffsets, error)
	ResetOffsets(ctx context.Context, name string) error
	Delete(ctx context.Context, name string, release *bool) (connect.DeleteResult, error)
	Jobs() []connect.JobStatus
	Metrics() *connect.Metrics
}

// WithWorker serves the worker's connectors, jobs and plugin catalog
// (Kafka Connect's paths), and its metrics on /metrics.
func WithWorker(w Connectors, cat *connect.Catalog) Option {
	return func(s *Server) { s.worker, s.catalog = w, cat }
}

func (s *Server) routeConnectors() {
	m := s.mux
	m.Handle("GET /connectors", noBody(s, s.listConnectors))
	m.Handle("GET /connectors/{name}", noBody(s, s.connectorInfo))
	m.Handle("GET /connectors/{name}/config", noBody(s, s.connectorConfig))
	m.Handle("GET /connectors/{name}/status", noBody(s, s.connectorStatus))
	m.Handle("GET /connectors/{name}/tasks", noBody(s, s.connectorTasks))
	m.Handle("GET /connectors/{name}/tasks/0/status", noBody(s, s.taskStatus))
	m.Handle("PUT /connectors/{name}/pause", noBody(s, s.control(s.worker.Pause)))
	m.Handle("PUT /connectors/{name}/resume", noBody(s, s.control(s.worker.Resume)))
	m.Handle("PUT /connectors/{name}/stop", noBody(s, s.controlCtx(s.worker.Stop)))
	m.Handle("POST /connectors/{name}/restart", noBody(s, s.controlCtx(s.worker.Restart)))
	m.Handle("POST /connectors/{name}/tasks/0/restart", noBody(s, s.controlCtx(s.worker.Restart)))
	m.Handle("DELETE /connectors/{name}", noBody(s, s.deleteConnector))
	m.Handle("GET /connectors/{name}/offsets", noBody(s, s.connectorOffsets))
	m.Handle("DELETE /connectors/{name}/offsets", noBody(s, s.resetConnectorOffsets))
	m.Handle("GET /connector-plugins", noBody(s, s.listPlugins))
	m.Handle("GET /connector-plugins/{plugin}/config", noBody(s, s.pluginConfig))
	m.Handle("GET /jobs", noBody(s, s.listJobs))
}

func (s *Server) listConnectors(r *http.Request) (any, int, error) {
	names := s.worker.Connectors()
	switch r.URL.Query().Get("expand") {
	case "status":
		out := map[string]any{}
		for _, n := range names {
			if st, err := s.worker.Status(n); err == nil {
				out[n] = map[string]any{"status": st}
			}
		}
		return out, 200, nil
	case "info":
		out := map[string]any{}
		for _, n := range names {
			if in, err := s.worker.Info(n); err == nil {
				out[n] = map[string]any{"info": in}
			}
		}
		return out, 200, nil
	}
	return names, 200, nil
}

func (s *Server) connectorInfo(r *http.Request) (any, int, error) {
	in, err := s.worker.Info(r.PathValue("name"))
	return in, 200, err
}

func (s *Server) connectorConfig(r *http.Request) (any, int, error) {
	in, err := s.worker.Info(r.PathValue("name"))
	return in.Config, 200, err
}

func (s *Server) connectorStatus(r *http.Request) (any, int, error) {
	st, err := s.worker.Status(r.PathValue("name"))
	return st, 200, err
}

func (s *Server) connectorTasks(r *http.Request) (any, int, error) {
	in, err := s.worker.Info(r.PathValue("name"))
	if err != nil {
		return nil, 0, err
	}
	return []map[string]any{{"id": in.Tasks[0], "config": in.Config}}, 200, nil
}

func (s *Server) taskStatus(r *http.Request) (any, int, error) {
	st, err := s.worker.Status(r.PathValue("name"))
	if err != nil {
		return nil, 0, err
	}
	return st.Tasks[0], 200, nil
}

func (s *Server) control(fn func(string) error) func(*http.Request) (any, int, error) {
	return func(r *http.Request) (any, int, error) {
		return nil, 202, fn(r.PathValue("name"))
	}
}

func (s *Server) controlCtx(fn func(context.Context, string) error) func(*http.Request) (any, int, error) {
	return func(r *http.Request) (any, int, error) {
		ctx, cancel := context.WithTimeout(r.Context(), 60*time.Second)
		defer cancel()
		return nil, 204, fn(ctx, r.PathValue("name"))
	}
}

func (s *Server) connectorOffsets(r *http.Request) (any, int, error) {
	o, err := s.worker.Offsets(r.PathValue("name"))
	return o, 200, err
}

func (s *Server) resetConnectorOffsets(r *http.Request) (any, int, error) {
	if err := s.worker.ResetOffsets(r.Context(), r.PathValue("name")); err != nil {
		return nil, 0, err
	}
	return map[string]string{"message": "The offsets of this connector have been reset; it starts from the beginning when resumed."}, 200, nil
}

// PluginInfo is an entry of GET /connector-plugins.
type PluginInfo struct {
	Class   string `json:"class"`
	Type    string `json:"type"`
	Version string `json:"version"`
}

func (s *Server) listPlugins(r *http.Request) (any, int, error) {
	out := []PluginInfo{}
	all := r.URL.Query().Get("connectorsOnly") == "false"
	for _, p := range s.catalog.Plugins {
		if all || p.Kind == connect.KindSource || p.Kind == connect.KindSink {
			out = append(out, PluginInfo{p.Name, p.Kind, "eddy"})
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Class < out[b].Class })
	return out, 200, nil
}

func (s *Server) pluginConfig(r *http.Request) (any, int, error) {
	p := s.catalog.Plugin(r.PathValue("plugin"))
	if p == nil {
		return nil, 0, ErrUnknownPlugin
	}
	return p.Params, 200, nil
}

func (s *Server) listJobs(*http.Request) (any, int, error) {
	js := s.worker.Jobs()
	if js == nil {
		js = []connect.JobStatus{}
	}
	return js, 200, nil
}

// deleteConnector removes a connector from the running worker. When its
// source holds state upstream (a replication slot), the caller must say
// what becomes of it: ?release=true drops it, ?release=false keeps it.
func (s *Server) deleteConnector(r *http.Request) (any, int, error) {
	var release *bool
	if v := r.URL.Query().Get("release"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, 0, fmt.Errorf("%w: release=%q: want true or false", ErrBadRequest, v)
		}
		release = &b
	}
	res, err := s.worker.Delete(r.Context(), r.PathValue("name"), release)
	if err != nil {
		return nil, 0, err
	}
	return res, 200, nil
}

// ErrUnknownPlugin is a plugin the catalog does not list.
var ErrUnknownPlugin = errors.New("unknown plugin")
