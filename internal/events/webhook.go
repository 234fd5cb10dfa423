package events

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/regfile"
)

// Headers of a webhook request.
const (
	// HeaderSignature is "sha256=" and the hex HMAC-SHA256 of the request
	// body keyed with the contents of the hook's secret_file. Receivers
	// recompute it over the raw body and compare in constant time
	// (hmac.Equal), as Verify does.
	HeaderSignature = "X-Wharf-Signature"
	// HeaderEvent is the event type, e.g. "upload".
	HeaderEvent = "X-Wharf-Event"
	// HeaderDelivery is the event id. A retried delivery carries the same
	// id, so a receiver can discard duplicates.
	HeaderDelivery = "X-Wharf-Delivery"
)

// Signature returns the X-Wharf-Signature value for body.
func Signature(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify reports whether header is the valid X-Wharf-Signature of body.
func Verify(secret, body []byte, header string) bool {
	return hmac.Equal([]byte(header), []byte(Signature(secret, body)))
}

type webhook struct {
	url     string
	secret  []byte // nil: requests are not signed
	timeout time.Duration
	client  *http.Client
}

func newWebhook(c *config.Webhook) (*webhook, error) {
	w := &webhook{url: c.URL, timeout: c.Timeout}
	if w.timeout <= 0 {
		w.timeout = config.DefaultWebhookTimeout
	}
	if c.SecretFile != "" {
		data, err := regfile.Read(c.SecretFile, maxSecretFile)
		if err != nil {
			// The path is the operator's, not a secret; the content never
			// appears anywhere.
			return nil, fmt.Errorf("webhook secret: %w", err)
		}
		// "openssl rand -hex 32 > hook.secret" leaves a newline that the
		// receiver's copy of the secret usually lacks.
		secret := bytes.TrimRight(data, "\r\n")
		if len(secret) == 0 {
			return nil, fmt.Errorf("webhook secret %s: file is empty", c.SecretFile)
		}
		w.secret = secret
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	w.client = &http.Client{
		Transport: tr,
		Timeout:   w.timeout,
		// A redirect would resend the signed event to wherever the
		// endpoint points (and turn the POST into a GET): treat it as a
		// failure the operator must fix in the URL instead.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return w, nil
}

func (w *webhook) kind() string { return "webhook" }

func (w *webhook) deliver(ctx context.Context, ev *Event, body []byte) ([]slog.Attr, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("webhook request: %w", scrubURL(err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "wharf")
	req.Header.Set(HeaderEvent, ev.Type)
	req.Header.Set(HeaderDelivery, ev.ID)
	if w.secret != nil {
		req.Header.Set(HeaderSignature, Signature(w.secret, body))
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("webhook post: %w", scrubURL(err))
	}
	defer resp.Body.Close()
	// Read a little of the answer: enough to show the operator why a
	// request failed, and to let the connection be reused.
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	attrs := []slog.Attr{slog.Int("status", resp.StatusCode)}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		if s := strings.TrimSpace(string(snippet)); s != "" {
			attrs = append(attrs, slog.String("response", s))
		}
		return attrs, fmt.Errorf("webhook answered %s", resp.Status)
	}
	return attrs, nil
}

// scrubURL drops the URL from net/http's errors: a webhook URL may carry
// a token in its query or user info, and errors end up in logs.
func scrubURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// maxSecretFile bounds webhook.secret_file: a secret is a line, not a file
// to read whole whatever it is.
const maxSecretFile = 64 << 10
