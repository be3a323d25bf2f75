// Command eddy is Eddy's CLI and server: change data capture into an
// embedded, durable log, delivered to S3, search indexes and databases.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/eddy-cdc/eddy/admin"
	elog "github.com/eddy-cdc/eddy/log"
)

// usageError marks a mistake in the command line (exit status 2).
type usageError struct{ error }

// app holds what every command shares: where the log is and the streams.
type app struct {
	dataDir  string
	server   string
	token    string
	user     string // user:password for the admin API (HTTP Basic)
	registry string
	// The registry's credentials, and the TLS files of both clients.
	registryUser, registryToken string
	caFile, certFile, keyFile   string
	hc                          *http.Client
	stdin                       io.Reader
	stdout                      io.Writer
	stderr                      io.Writer
	logger                      *slog.Logger
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr,
		logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "eddy: %s\n", oneLine(err))
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "eddy",
		Short:         "Change data capture into a durable, replayable log, delivered anywhere",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&a.dataDir, "data-dir", os.Getenv("EDDY_DATA_DIR"), "open the log in this directory directly (locks it) [$EDDY_DATA_DIR]")
	pf.StringVar(&a.server, "server", os.Getenv("EDDY_SERVER"), "use the admin API of a running `eddy run`, e.g. http://127.0.0.1:8083 [$EDDY_SERVER]")
	pf.StringVar(&a.token, "token", os.Getenv("EDDY_TOKEN"), "bearer token for --server [$EDDY_TOKEN]")
	pf.StringVar(&a.user, "user", os.Getenv("EDDY_USER"), "USER:PASSWORD (HTTP Basic) for --server [$EDDY_USER]")
	pf.StringVar(&a.registryUser, "registry-user-info", os.Getenv("EDDY_REGISTRY_USER_INFO"), "USER:PASSWORD (HTTP Basic, Confluent's basic.auth.user.info) for the schema registry [$EDDY_REGISTRY_USER_INFO]")
	pf.StringVar(&a.registryToken, "registry-token", os.Getenv("EDDY_REGISTRY_TOKEN"), "bearer token for the schema registry [$EDDY_REGISTRY_TOKEN]")
	pf.StringVar(&a.caFile, "ca-file", os.Getenv("EDDY_CA_FILE"), "PEM CA bundle to trust for https:// servers [$EDDY_CA_FILE]")
	pf.StringVar(&a.certFile, "cert-file", os.Getenv("EDDY_CERT_FILE"), "PEM client certificate, for servers that ask for one [$EDDY_CERT_FILE]")
	pf.StringVar(&a.keyFile, "key-file", os.Getenv("EDDY_KEY_FILE"), "PEM key of --cert-file [$EDDY_KEY_FILE]")
	root.AddCommand(a.topicsCommand(), a.produceCommand(), a.consumeCommand(), a.groupsCommand(),
		a.registryCommand(), a.benchCommand(), a.runCommand(), a.validateCommand(), a.connectorsCommand(), a.pluginsCommand())
	return root
}

// broker opens the log named by --data-dir or --server.
func (a *app) broker() (admin.Broker, error) {
	switch {
	case a.server != "" && a.dataDir != "":
		return nil, usageError{errors.New("give --data-dir or --server, not both")}
	case a.server != "":
		return a.client()
	case a.dataDir != "":
		return admin.OpenLocal(a.dataDir, elog.WithLogger(a.logger), elog.WithCleanerInterval(0))
	}
	return nil, usageError{errors.New("say where the log is: --data-dir DIR or --server URL")}
}

// httpClient is the HTTP client of the admin API and registry clients,
// with --ca-file and --cert-file/--key-file.
func (a *app) httpClient() (*http.Client, error) {
	if a.hc != nil {
		return a.hc, nil
	}
	hc := &http.Client{}
	if a.caFile != "" || a.certFile != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if a.caFile != "" {
			pem, err := os.ReadFile(a.caFile)
			if err != nil {
				return nil, usageError{fmt.Errorf("--ca-file: %w", err)}
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, usageError{fmt.Errorf("--ca-file %s: no PEM certificate in it", a.caFile)}
			}
		}
		if a.certFile != "" {
			pair, err := tls.LoadX509KeyPair(a.certFile, a.keyFile)
			if err != nil {
				return nil, usageError{fmt.Errorf("--cert-file, --key-file: %w", err)}
			}
			tc.Certificates = []tls.Certificate{pair}
		}
		hc.Transport = &http.Transport{TLSClientConfig: tc, Proxy: http.ProxyFromEnvironment}
	}
	a.hc = hc
	return hc, nil
}

// withBroker runs fn with an open broker and closes it after.
func (a *app) withBroker(fn func(b admin.Broker) error) error {
	b, err := a.broker()
	if err != nil {
		return err
	}
	err = fn(b)
	if cerr := b.Close(); err == nil {
		err = cerr
	}
	return err
}

// exactArgs is cobra.ExactArgs with a usage error.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != n {
			return usageError{fmt.Errorf("want %s, got %d arguments", what, len(args))}
		}
		return nil
	}
}
