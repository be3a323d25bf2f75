package admin

import (
	"context"
	"github.com/eddy-cdc/eddy/connect"
	"net/url"
	"strconv"
)

// The connector operations of the admin API, for `eddy connectors`.

// ConnectorStatuses returns every connector's status in one request
// (GET /connectors?expand=status).
func (c *Client) ConnectorStatuses(ctx context.Context) (map[string]connect.ConnectorStatus, error) {
	var raw map[string]struct {
		Status connect.ConnectorStatus `json:"status"`
	}
	if err := c.do(ctx, "GET", "/connectors?expand=status", nil, &raw); err != nil {
		return nil, err
	}
	out := make(map[string]connect.ConnectorStatus, len(raw))
	for n, v := range raw {
		out[n] = v.Status
	}
	return out, nil
}

// connect.ConnectorStatus returns a connector's and its task's state.
func (c *Client) ConnectorStatus(ctx context.Context, name string) (connect.ConnectorStatus, error) {
	var out connect.ConnectorStatus
	return out, c.do(ctx, "GET", "/connectors/"+url.PathEscape(name)+"/status", nil, &out)
}

// connect.ConnectorInfo returns a connector's config, secrets redacted.
func (c *Client) ConnectorInfo(ctx context.Context, name string) (connect.ConnectorInfo, error) {
	var out connect.ConnectorInfo
	return out, c.do(ctx, "GET", "/connectors/"+url.PathEscape(name), nil, &out)
}

// ControlConnector runs pause, resume, stop or restart.
func (c *Client) ControlConnector(ctx context.Context, name, action string) error {
	method := "PUT"
	if action == "restart" {
		method = "POST"
	}
	return c.do(ctx, method, "/connectors/"+url.PathEscape(name)+"/"+action, nil, nil)
}

// connect.ConnectorOffsets returns a connector's stored position or committed
// offsets.
func (c *Client) ConnectorOffsets(ctx context.Context, name string) (connect.ConnectorOffsets, error) {
	var out connect.ConnectorOffsets
	return out, c.do(ctx, "GET", "/connectors/"+url.PathEscape(name)+"/offsets", nil, &out)
}

// ResetConnectorOffsets resets a stopped connector's offsets.
func (c *Client) ResetConnectorOffsets(ctx context.Context, name string) error {
	return c.do(ctx, "DELETE", "/connectors/"+url.PathEscape(name)+"/offsets", nil, nil)
}

// DeleteConnector removes a connector from the running worker; release
// says what becomes of what its source holds upstream (nil: refuse when
// it holds anything, connect.ErrHoldsUpstream).
func (c *Client) DeleteConnector(ctx context.Context, name string, release *bool) (connect.DeleteResult, error) {
	path := "/connectors/" + url.PathEscape(name)
	if release != nil {
		path += "?release=" + strconv.FormatBool(*release)
	}
	var res connect.DeleteResult
	err := c.do(ctx, "DELETE", path, nil, &res)
	return res, err
}
