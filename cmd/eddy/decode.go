package main

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/eddy-cdc/eddy/admin"
	elog "github.com/eddy-cdc/eddy/log"
	"github.com/eddy-cdc/eddy/registry"
)

// wireDecoder turns Confluent wire-format bytes into JSON for people. Bytes
// that only look like the wire format, or whose schema cannot be had, are
// shown as they are; the first such failure is reported once on stderr.
type wireDecoder struct {
	a       *app
	open    func() (*registry.Serde, error) // the schema source, opened on first use
	once    sync.Once
	serde   *registry.Serde
	openErr error
	warn    sync.Once
}

// wireDecoder chooses where schemas come from: the registry kept in the
// same data directory, or the --registry (or --server host) URL.
func (a *app) wireDecoder(ctx context.Context, b admin.Broker) *wireDecoder {
	d := &wireDecoder{a: a}
	if lb, ok := b.(*admin.LocalBroker); ok {
		d.open = func() (*registry.Serde, error) {
			if _, err := lb.Log.Topic(registry.SchemasTopic); errors.Is(err, elog.ErrUnknownTopic) {
				return nil, errors.New("this data directory holds no schemas")
			}
			r, err := registry.Open(ctx, lb.Log)
			if err != nil {
				return nil, err
			}
			return registry.NewSerde(registry.Local(r)), nil
		}
	} else {
		d.open = func() (*registry.Serde, error) {
			hc, err := a.httpClient()
			if err != nil {
				return nil, err
			}
			src, err := registry.Remote(a.registryURL(), registry.RemoteOptions{HTTP: hc, UserInfo: a.registryUser, Token: a.registryToken})
			if err != nil {
				return nil, err
			}
			return registry.NewSerde(src), nil
		}
	}
	return d
}

// decode returns the JSON of wire-format data and its schema id.
func (d *wireDecoder) decode(data []byte) ([]byte, int, bool) {
	if d == nil {
		return nil, 0, false
	}
	id, _, err := registry.SplitWire(data)
	if err != nil {
		return nil, 0, false
	}
	d.once.Do(func() { d.serde, d.openErr = d.open() })
	if err = d.openErr; err == nil {
		js, derr := d.serde.DecodeJSON(context.Background(), data)
		if derr == nil {
			return js, id, true
		}
		err = derr
	}
	d.warn.Do(func() {
		fmt.Fprintf(d.a.stderr, "eddy: showing wire-format bytes undecoded: %v\n", err)
	})
	return nil, 0, false
}
