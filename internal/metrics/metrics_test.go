package metrics

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestTextFormat(t *testing.T) {
	r := NewRegistry()
	c := r.NewCounterVec("x_total", "Things.", "route", "status")
	c.Inc("GET /a", "200")
	c.Add(2, "GET /a", "200")
	c.Inc(`we"ird\`, "500")
	r.NewGaugeFunc("g", "A gauge.", func() float64 { return 1.5 })
	h := r.NewHistogram("lat_seconds", "Latency.", []float64{0.1, 1}, "route")
	h.Observe(0.05, "r")
	h.Observe(0.5, "r")
	h.Observe(5, "r")
	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	want := `# HELP x_total Things.
# TYPE x_total counter
x_total{route="GET /a",status="200"} 3
x_total{route="we\"ird\\",status="500"} 1
# HELP g A gauge.
# TYPE g gauge
g 1.5
# HELP lat_seconds Latency.
# TYPE lat_seconds histogram
lat_seconds_bucket{route="r",le="0.1"} 1
lat_seconds_bucket{route="r",le="1"} 2
lat_seconds_bucket{route="r",le="+Inf"} 3
lat_seconds_sum{route="r"} 5.55
lat_seconds_count{route="r"} 3
`
	if got := rec.Body.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Errorf("content type %q", rec.Header().Get("Content-Type"))
	}
	if c.Get("GET /a", "200") != 3 || c.Get("nope") != 0 {
		t.Error("Get")
	}
}
