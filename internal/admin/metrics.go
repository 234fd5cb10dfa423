// Package admin is the operator's HTTP endpoint: Prometheus metrics,
// liveness and readiness. Metrics are derived from the events every
// session already emits, plus gauges read at scrape time, so counting adds
// no work to the transfer path beyond an event that exists anyway.
package admin

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/wharf-sftp/wharf/internal/events"
)

// Sources are read at each scrape.
type Sources struct {
	// Sessions returns the logged-in sessions per protocol.
	Sessions func() map[string]int
	// Bans returns how many addresses are banned now.
	Bans func() int
	// Hooks returns, per hook name, its queue depth and its delivered,
	// failed and dropped counts.
	Hooks func() map[string]HookStats
	// PasswordChecks returns the password checks hashing now and those
	// waiting for room (limits.max_concurrent_password_checks).
	PasswordChecks func() (running, waiting int)
}

// HookStats is one hook's delivery state.
type HookStats struct {
	Queued                     int
	Delivered, Failed, Dropped uint64
}

// Metrics owns wharf's Prometheus registry.
type Metrics struct {
	reg       *prometheus.Registry
	logins    *prometheus.CounterVec
	bytes     *prometheus.CounterVec
	transfers *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	changes   *prometheus.CounterVec
	reloads   *prometheus.CounterVec
	bans      prometheus.Counter
	recovered prometheus.Counter
	swept     prometheus.Counter
	s3        *prometheus.CounterVec
	proxy     *prometheus.CounterVec
}

// NewMetrics registers every metric; src may leave functions nil.
func NewMetrics(src Sources) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wharf_logins_total", Help: "Logins by protocol, method and outcome (ok, failed).",
		}, []string{"protocol", "method", "outcome"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wharf_transfer_bytes_total", Help: "Bytes moved by finished transfers, by protocol and direction (up, down).",
		}, []string{"protocol", "direction"}),
		transfers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wharf_transfers_total", Help: "Finished transfers by protocol, direction and outcome.",
		}, []string{"protocol", "direction", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "wharf_transfer_duration_seconds", Help: "Duration of finished transfers.",
			Buckets: []float64{0.01, 0.05, 0.25, 1, 5, 15, 60, 300, 1800, 7200},
		}, []string{"direction"}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wharf_changes_total", Help: "Deletes, renames, mkdirs and rmdirs by outcome.",
		}, []string{"type", "outcome"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wharf_config_reloads_total", Help: "Config reloads by outcome (ok, failed).",
		}, []string{"outcome"}),
		bans: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wharf_defender_bans_total", Help: "Addresses banned by the defender.",
		}),
		recovered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wharf_uploads_recovered_total", Help: "Unfinished uploads of a daemon that died, made resumable partials at start or, on s3, by the takeover of a dead daemon's uploads.",
		}),
		swept: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wharf_s3_uploads_swept_total", Help: "Multipart uploads aborted at start (partials past uploads.partial_ttl, and uploads no partial names) or by the takeover of a dead daemon's uploads.",
		}),
		s3: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wharf_s3_requests_total", Help: "Requests sent to the S3 store, retries included, by operation (PutObject, UploadPart, ...).",
		}, []string{"op"}),
		proxy: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wharf_proxy_protocol_refused_total", Help: "Connections refused for their PROXY protocol header, by reason (untrusted, missing, invalid, timeout).",
		}, []string{"reason"}),
	}
	m.reg.MustRegister(m.logins, m.bytes, m.transfers, m.duration, m.changes, m.reloads, m.bans, m.recovered, m.swept, m.s3, m.proxy,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.reg.MustRegister(&gauges{src: src})
	return m
}

// Registry is for tests and the HTTP handler.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Reload counts a config reload.
func (m *Metrics) Reload(ok bool) {
	m.reloads.WithLabelValues(outcome(ok)).Inc()
}

// Banned counts a new ban.
func (m *Metrics) Banned() { m.bans.Inc() }

// RecoveredUploads counts uploads recovered at start (vfs.Local.Recover,
// s3store.Backend.Recover) and by the s3 takeover of a dead daemon's.
func (m *Metrics) RecoveredUploads(n int) { m.recovered.Add(float64(n)) }

// SweptUploads counts multipart uploads the s3 backend aborted at start
// and in its takeover of a dead daemon's.
func (m *Metrics) SweptUploads(n int) { m.swept.Add(float64(n)) }

// S3Request counts one request to the S3 store.
func (m *Metrics) S3Request(op string) { m.s3.WithLabelValues(op).Inc() }

// ProxyRefused counts a connection refused for its PROXY protocol header
// (package proxyproto's reasons).
func (m *Metrics) ProxyRefused(reason string) { m.proxy.WithLabelValues(reason).Inc() }

func outcome(ok bool) string {
	if ok {
		return "ok"
	}
	return "failed"
}

// Sink counts each event, then passes it on to next.
func (m *Metrics) Sink(next events.Sink) events.Sink {
	return sink{m: m, next: next}
}

type sink struct {
	m    *Metrics
	next events.Sink
}

func (s sink) Emit(e events.Event) {
	m := s.m
	switch e.Type {
	case events.Login, events.LoginFailed:
		m.logins.WithLabelValues(e.Protocol, e.Method, e.Outcome).Inc()
	case events.Upload, events.Download:
		dir := "up"
		if e.Type == events.Download {
			dir = "down"
		}
		m.bytes.WithLabelValues(e.Protocol, dir).Add(float64(e.Bytes))
		m.transfers.WithLabelValues(e.Protocol, dir, e.Outcome).Inc()
		m.duration.WithLabelValues(dir).Observe(e.Duration)
	default:
		m.changes.WithLabelValues(e.Type, e.Outcome).Inc()
	}
	s.next.Emit(e)
}

// gauges reads the current state at scrape time.
type gauges struct{ src Sources }

var (
	sessionsDesc = prometheus.NewDesc("wharf_sessions", "Logged-in sessions by protocol.", []string{"protocol"}, nil)
	bannedDesc   = prometheus.NewDesc("wharf_defender_banned", "Addresses banned now.", nil, nil)
	queueDesc    = prometheus.NewDesc("wharf_hook_queue_depth", "Events waiting for delivery, by hook.", []string{"hook"}, nil)
	hookDesc     = prometheus.NewDesc("wharf_hook_deliveries_total", "Hook deliveries by hook and outcome (delivered, failed attempt, dropped).", []string{"hook", "outcome"}, nil)
	checksDesc   = prometheus.NewDesc("wharf_password_checks", "Password hash verifications by state: running, or waiting for room.", []string{"state"}, nil)
)

func (g *gauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- sessionsDesc
	ch <- bannedDesc
	ch <- queueDesc
	ch <- hookDesc
	ch <- checksDesc
}

func (g *gauges) Collect(ch chan<- prometheus.Metric) {
	if g.src.Sessions != nil {
		byProto := g.src.Sessions()
		for _, p := range []string{"sftp", "ftps"} {
			ch <- prometheus.MustNewConstMetric(sessionsDesc, prometheus.GaugeValue, float64(byProto[p]), p)
		}
	}
	if g.src.Bans != nil {
		ch <- prometheus.MustNewConstMetric(bannedDesc, prometheus.GaugeValue, float64(g.src.Bans()))
	}
	if g.src.PasswordChecks != nil {
		running, waiting := g.src.PasswordChecks()
		ch <- prometheus.MustNewConstMetric(checksDesc, prometheus.GaugeValue, float64(running), "running")
		ch <- prometheus.MustNewConstMetric(checksDesc, prometheus.GaugeValue, float64(waiting), "waiting")
	}
	if g.src.Hooks != nil {
		for name, h := range g.src.Hooks() {
			ch <- prometheus.MustNewConstMetric(queueDesc, prometheus.GaugeValue, float64(h.Queued), name)
			ch <- prometheus.MustNewConstMetric(hookDesc, prometheus.CounterValue, float64(h.Delivered), name, "delivered")
			ch <- prometheus.MustNewConstMetric(hookDesc, prometheus.CounterValue, float64(h.Failed), name, "failed")
			ch <- prometheus.MustNewConstMetric(hookDesc, prometheus.CounterValue, float64(h.Dropped), name, "dropped")
		}
	}
}
