package connecttest

import (
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/eddy-cdc/eddy/connect"
)

// construct checks params against the plugin's catalog entry, as config
// loading does, and builds the plugin with newFn.
func construct[P any](plugin string, newFn func(connect.Params, connect.Env) (P, error), params map[string]any) (P, error) {
	var zero P
	cat, err := connect.BuiltinCatalog()
	if err != nil {
		return zero, err
	}
	p, err := connect.NewParams(cat.Plugin(plugin), params)
	if err != nil {
		return zero, err
	}
	return newFn(p, connect.Env{Connector: "contract", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

// mustConstruct is construct, failing the test on an error.
func mustConstruct[P any](t *testing.T, plugin string, newFn func(connect.Params, connect.Env) (P, error), params map[string]any) P {
	t.Helper()
	p, err := construct(plugin, newFn, params)
	if err != nil {
		t.Fatalf("construct %s: %v", plugin, err)
	}
	return p
}

// checkBadConfigs: every configuration is refused at construction, the
// error naming its key.
func checkBadConfigs[P any](t *testing.T, plugin string, newFn func(connect.Params, connect.Env) (P, error), configs []BadConfig) {
	for _, bc := range configs {
		if _, err := construct(plugin, newFn, bc.Params); err == nil || !strings.Contains(err.Error(), bc.Key) {
			t.Errorf("config %v: %v, want an error naming %s", bc.Params, err, bc.Key)
		}
	}
}
