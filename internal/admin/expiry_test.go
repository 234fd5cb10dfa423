package admin

import (
	"testing"
	"time"
)

func TestWatchExpiries(t *testing.T) {
	now := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	m := NewMetrics(Sources{})
	m.WatchExpiries(func() []Expiry {
		return []Expiry{
			{User: "acme", Fingerprint: "SHA256:old", At: now.Add(-time.Hour)},
			{User: "acme", Fingerprint: "SHA256:new", At: now.Add(10 * 24 * time.Hour)},
			{User: "beta", At: now.Add(90 * time.Second)},
		}
	}, func() time.Time { return now })
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, s := range f.GetMetric() {
			key := f.GetName()
			for _, l := range s.GetLabel() {
				key += " " + l.GetName() + "=" + l.GetValue()
			}
			got[key] = s.GetGauge().GetValue()
		}
	}
	for key, want := range map[string]float64{
		"wharf_key_expiry_seconds fingerprint=SHA256:old user=acme": -3600,
		"wharf_key_expiry_seconds fingerprint=SHA256:new user=acme": 864000,
		"wharf_password_expiry_seconds user=beta":                   90,
	} {
		if v, ok := got[key]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", key, v, ok, want)
		}
	}
}
