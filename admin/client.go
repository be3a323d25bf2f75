package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	elog "github.com/eddy-cdc/eddy/log"
)

// Client is a Broker over the admin API of a running `eddy run`.
type Client struct {
	base     string
	token    string
	userInfo string // user:password for HTTP Basic
	http     *http.Client
}

// ClientOption configures NewClient.
type ClientOption func(*Client)

// WithHTTPClient sends the requests through hc (TLS settings: a CA to
// trust, a client certificate).
func WithHTTPClient(hc *http.Client) ClientOption { return func(c *Client) { c.http = hc } }

// WithUserInfo sends user:password as HTTP Basic credentials.
func WithUserInfo(userInfo string) ClientOption { return func(c *Client) { c.userInfo = userInfo } }

// NewClient returns a client of the admin API at base (http://host:port).
// token, when set, is sent as a bearer token.
func NewClient(base, token string, opts ...ClientOption) (*Client, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("server URL %q: want http://host:port", base)
	}
	c := &Client{base: strings.TrimRight(base, "/"), token: token, http: &http.Client{}}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	_, err := c.doRaw(ctx, method, path, in, out, "")
	return err
}

func (c *Client) doRaw(ctx context.Context, method, path string, in, out any, accept string) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	if user, pass, ok := strings.Cut(c.userInfo, ":"); ok {
		req.SetBasicAuth(user, pass)
	} else if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		var e apiError
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if json.Unmarshal(b, &e) != nil || e.Message == "" {
			return nil, fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, strings.TrimSpace(string(b)))
		}
		return nil, errorFromCode(e.ErrorCode, e.Message)
	}
	if out == nil {
		if accept == "" {
			resp.Body.Close()
		}
		return resp, nil
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return nil, fmt.Errorf("%s %s: reading response: %w", method, path, err)
	}
	return resp, nil
}

func esc(s string) string { return url.PathEscape(s) }

func (c *Client) CreateTopic(ctx context.Context, name string, cfg elog.TopicConfig) (TopicInfo, error) {
	var t TopicInfo
	err := c.do(ctx, "POST", "/topics", createTopicRequest{name, cfg}, &t)
	return t, err
}

func (c *Client) ListTopics(ctx context.Context) ([]TopicInfo, error) {
	var ts []TopicInfo
	err := c.do(ctx, "GET", "/topics", nil, &ts)
	return ts, err
}

func (c *Client) DescribeTopic(ctx context.Context, name string) (TopicInfo, error) {
	var t TopicInfo
	err := c.do(ctx, "GET", "/topics/"+esc(name), nil, &t)
	return t, err
}

func (c *Client) DeleteTopic(ctx context.Context, name string) error {
	return c.do(ctx, "DELETE", "/topics/"+esc(name), nil, nil)
}

func (c *Client) RestoreTopic(ctx context.Context, name, store string) (TopicInfo, error) {
	var t TopicInfo
	err := c.do(ctx, "POST", "/topics/"+esc(name)+"/restore", restoreTopicRequest{store}, &t)
	return t, err
}

func (c *Client) Produce(ctx context.Context, topic string, recs []elog.Record) ([]elog.Produced, error) {
	req := produceRequest{Records: make([]RecordJSON, len(recs))}
	for i := range recs {
		j := ToRecordJSON("", 0, &recs[i])
		if recs[i].Timestamp.IsZero() {
			j.Timestamp = 0
		}
		// Send bytes exactly: base64 whenever the bytes are not plain UTF-8.
		req.Records[i] = j
	}
	var res produceResponse
	err := c.do(ctx, "POST", "/topics/"+esc(topic)+"/records", req, &res)
	return res.Offsets, err
}

func (c *Client) Fetch(ctx context.Context, topic string, partition int, offset int64, maxBytes int, wait time.Duration) (elog.FetchResult, error) {
	q := url.Values{"offset": {strconv.FormatInt(offset, 10)}, "max_bytes": {strconv.Itoa(maxBytes)}}
	if wait > 0 {
		q.Set("wait_ms", strconv.FormatInt(wait.Milliseconds(), 10))
	}
	path := fmt.Sprintf("/topics/%s/partitions/%d/records?%s", esc(topic), partition, q.Encode())
	resp, err := c.doRaw(ctx, "GET", path, nil, nil, BatchesMediaType)
	if err != nil {
		return elog.FetchResult{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return elog.FetchResult{}, fmt.Errorf("GET %s: %w", path, err)
	}
	res := elog.FetchResult{Data: data}
	for _, h := range []struct {
		name string
		dst  *int64
	}{{"X-Eddy-Next-Offset", &res.NextOffset}, {"X-Eddy-High-Watermark", &res.HighWatermark}, {"X-Eddy-Log-Start-Offset", &res.LogStartOffset}} {
		if *h.dst, err = strconv.ParseInt(resp.Header.Get(h.name), 10, 64); err != nil {
			return elog.FetchResult{}, fmt.Errorf("GET %s: header %s: %w", path, h.name, err)
		}
	}
	return res, nil
}

func (c *Client) Resolve(ctx context.Context, topic string, partition int, spec elog.OffsetSpec) (int64, error) {
	var r offsetResponse
	err := c.do(ctx, "GET", fmt.Sprintf("/topics/%s/partitions/%d/offsets?at=%s", esc(topic), partition, url.QueryEscape(spec.String())), nil, &r)
	return r.Offset, err
}

func (c *Client) JoinGroup(ctx context.Context, group string, req elog.JoinRequest) (elog.Assignment, error) {
	var a elog.Assignment
	err := c.do(ctx, "POST", "/groups/"+esc(group)+"/members", joinRequest{
		MemberID: req.MemberID, ClientID: req.ClientID, Topics: req.Topics, SessionTimeoutMs: req.SessionTimeout.Milliseconds(),
	}, &a)
	return a, err
}

func (c *Client) Heartbeat(ctx context.Context, group, member string, generation int) error {
	return c.do(ctx, "POST", "/groups/"+esc(group)+"/members/"+esc(member)+"/heartbeat", generationRequest{generation}, nil)
}

func (c *Client) LeaveGroup(ctx context.Context, group, member string) error {
	return c.do(ctx, "DELETE", "/groups/"+esc(group)+"/members/"+esc(member), nil, nil)
}

func (c *Client) Commit(ctx context.Context, group, member string, generation int, offsets map[elog.TopicPartition]int64) error {
	req := commitRequest{MemberID: member, Generation: generation}
	for tp, o := range offsets {
		req.Offsets = append(req.Offsets, partitionOffset{tp.Topic, tp.Partition, o})
	}
	return c.do(ctx, "POST", "/groups/"+esc(group)+"/offsets", req, nil)
}

func (c *Client) Committed(ctx context.Context, group string) (map[elog.TopicPartition]elog.OffsetCommit, error) {
	var list []committedOffset
	if err := c.do(ctx, "GET", "/groups/"+esc(group)+"/offsets", nil, &list); err != nil {
		return nil, err
	}
	out := make(map[elog.TopicPartition]elog.OffsetCommit, len(list))
	for _, o := range list {
		out[elog.TopicPartition{Topic: o.Topic, Partition: o.Partition}] = o.OffsetCommit
	}
	return out, nil
}

func (c *Client) ListGroups(ctx context.Context) ([]string, error) {
	var gs []string
	err := c.do(ctx, "GET", "/groups", nil, &gs)
	return gs, err
}

func (c *Client) DescribeGroup(ctx context.Context, group string) (elog.GroupDescription, error) {
	var d elog.GroupDescription
	err := c.do(ctx, "GET", "/groups/"+esc(group), nil, &d)
	return d, err
}

func (c *Client) ResetGroup(ctx context.Context, group, topic string, spec elog.OffsetSpec) (map[elog.TopicPartition]int64, error) {
	var list []partitionOffset
	if err := c.do(ctx, "POST", "/groups/"+esc(group)+"/reset", resetRequest{topic, spec.String()}, &list); err != nil {
		return nil, err
	}
	out := make(map[elog.TopicPartition]int64, len(list))
	for _, o := range list {
		out[elog.TopicPartition{Topic: o.Topic, Partition: o.Partition}] = o.Offset
	}
	return out, nil
}

// Close releases idle connections.
func (c *Client) Close() error {
	c.http.CloseIdleConnections()
	return nil
}
