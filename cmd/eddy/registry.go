package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

// registryURL is --registry, or else $EDDY_REGISTRY, or else the --server
// host on Confluent's port 8081, or else http://127.0.0.1:8081.
func (a *app) registryURL() string {
	switch {
	case a.registry != "":
		return strings.TrimRight(a.registry, "/")
	case a.server != "":
		if u, err := url.Parse(a.server); err == nil && u.Hostname() != "" {
			return u.Scheme + "://" + u.Hostname() + ":8081"
		}
	}
	return "http://127.0.0.1:8081"
}

// registryCall sends one request to the schema registry and returns the
// body; a Confluent error becomes "message (error CODE)".
func (a *app) registryCall(ctx context.Context, method, path string, body any) ([]byte, error) {
	var in io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		in = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.registryURL()+path, in)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/vnd.schemaregistry.v1+json")
	if user, pass, ok := strings.Cut(a.registryUser, ":"); ok {
		req.SetBasicAuth(user, pass)
	} else if a.registryToken != "" {
		req.Header.Set("Authorization", "Bearer "+a.registryToken)
	}
	hc, err := a.httpClient()
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("schema registry: %w", err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("schema registry: %w", err)
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Code    int    `json:"error_code"`
			Message string `json:"message"`
		}
		if json.Unmarshal(out, &e) == nil && e.Message != "" {
			return nil, fmt.Errorf("%s (error %d)", e.Message, e.Code)
		}
		return nil, fmt.Errorf("schema registry: HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(out)))
	}
	return out, nil
}

func (a *app) registryCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "registry", Short: "Talk to the schema registry of a running `eddy run` (or any Confluent-compatible one)"}
	cmd.PersistentFlags().StringVar(&a.registry, "registry", os.Getenv("EDDY_REGISTRY"), "schema registry URL (default: the --server host on :8081, else http://127.0.0.1:8081) [$EDDY_REGISTRY]")
	show := func(c *cobra.Command, method, path string, body any) error {
		out, err := a.registryCall(c.Context(), method, path, body)
		if err != nil {
			return err
		}
		a.stdout.Write(bytes.TrimSpace(out))
		fmt.Fprintln(a.stdout)
		return nil
	}
	readSchema := func(file string) (map[string]any, error) {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		if !json.Valid(b) {
			return nil, fmt.Errorf("%s: not JSON", file)
		}
		return map[string]any{"schema": string(b)}, nil
	}
	esc := url.PathEscape
	cmd.AddCommand(
		&cobra.Command{Use: "subjects", Short: "List subjects", Args: exactArgs(0, "no arguments"),
			RunE: func(c *cobra.Command, _ []string) error { return show(c, "GET", "/subjects", nil) }},
		&cobra.Command{Use: "versions SUBJECT", Short: "List a subject's versions", Args: exactArgs(1, "the subject"),
			RunE: func(c *cobra.Command, args []string) error {
				return show(c, "GET", "/subjects/"+esc(args[0])+"/versions", nil)
			}},
		&cobra.Command{Use: "get SUBJECT [VERSION]", Short: "Show a version (default latest)",
			Args: func(_ *cobra.Command, args []string) error {
				if len(args) < 1 || len(args) > 2 {
					return usageError{errors.New("want SUBJECT [VERSION]")}
				}
				return nil
			},
			RunE: func(c *cobra.Command, args []string) error {
				v := "latest"
				if len(args) == 2 {
					if _, err := strconv.Atoi(args[1]); err != nil && args[1] != "latest" {
						return usageError{fmt.Errorf("version %q: want a number or latest", args[1])}
					}
					v = args[1]
				}
				return show(c, "GET", "/subjects/"+esc(args[0])+"/versions/"+v, nil)
			}},
		&cobra.Command{Use: "register SUBJECT FILE", Short: "Register the Avro schema in FILE; prints its id", Args: exactArgs(2, "SUBJECT FILE"),
			RunE: func(c *cobra.Command, args []string) error {
				body, err := readSchema(args[1])
				if err != nil {
					return err
				}
				return show(c, "POST", "/subjects/"+esc(args[0])+"/versions", body)
			}},
		&cobra.Command{Use: "check SUBJECT FILE", Short: "Say whether FILE's schema is compatible with SUBJECT (exit 1 when not)", Args: exactArgs(2, "SUBJECT FILE"),
			RunE: func(c *cobra.Command, args []string) error {
				body, err := readSchema(args[1])
				if err != nil {
					return err
				}
				out, err := a.registryCall(c.Context(), "POST", "/compatibility/subjects/"+esc(args[0])+"/versions/latest?verbose=true", body)
				if err != nil {
					return err
				}
				var res struct {
					IsCompatible bool     `json:"is_compatible"`
					Messages     []string `json:"messages"`
				}
				if err := json.Unmarshal(out, &res); err != nil {
					return fmt.Errorf("schema registry answer: %w", err)
				}
				if !res.IsCompatible {
					return fmt.Errorf("incompatible: %s", strings.Join(res.Messages, "; "))
				}
				fmt.Fprintln(a.stdout, "compatible")
				return nil
			}},
	)
	return cmd
}
