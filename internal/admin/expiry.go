package admin

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Expiry is one credential with an expiry: a key (Fingerprint set) or a
// password (Fingerprint "").
type Expiry struct {
	User        string
	Fingerprint string
	At          time.Time
}

var (
	keyExpiryDesc = prometheus.NewDesc("wharf_key_expiry_seconds",
		"Seconds until each user key with an expires_at stops working (negative once expired); enabled users only.",
		[]string{"user", "fingerprint"}, nil)
	passwordExpiryDesc = prometheus.NewDesc("wharf_password_expiry_seconds",
		"Seconds until each password with a password_expires_at stops working (negative once expired); enabled users only.",
		[]string{"user"}, nil)
)

// WatchExpiries exposes the expiries src returns, read at each scrape (so
// a reload shows at once), as wharf_key_expiry_seconds and
// wharf_password_expiry_seconds. Every configured expiry is a series, not
// only those within key_expiry_warning: an alert rule picks its own
// threshold, and a series that appeared only near the deadline could not
// be told from one that was never there. Call it once.
func (m *Metrics) WatchExpiries(src func() []Expiry, now func() time.Time) {
	m.reg.MustRegister(expiryCollector{src: src, now: now})
}

type expiryCollector struct {
	src func() []Expiry
	now func() time.Time
}

func (c expiryCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- keyExpiryDesc
	ch <- passwordExpiryDesc
}

func (c expiryCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.now()
	for _, x := range c.src() {
		left := x.At.Sub(now).Seconds()
		if x.Fingerprint == "" {
			ch <- prometheus.MustNewConstMetric(passwordExpiryDesc, prometheus.GaugeValue, left, x.User)
			continue
		}
		ch <- prometheus.MustNewConstMetric(keyExpiryDesc, prometheus.GaugeValue, left, x.User, x.Fingerprint)
	}
}
