package main

import (
	"testing"
	"time"
)

func TestParseWrk(t *testing.T) {
	out := []byte(`Running 5s test @ http://127.0.0.1:28080/hello
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.71ms    1.07ms  19.79ms   84.38%
    Req/Sec    19.26k     1.62k   22.24k    70.00%
  Latency Distribution
     50%    1.47ms
     75%    2.06ms
     90%    2.86ms
     99%    5.11ms
  191677 requests in 5.00s, 35.28MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  38325.31
Transfer/sec:      7.05MB
`)
	r, err := parseWrk(out)
	if err != nil {
		t.Fatal(err)
	}
	if r.RPS != 38325.31 || r.P50 != 1470*time.Microsecond || r.P99 != 5110*time.Microsecond || r.Failed != 7 {
		t.Fatalf("parseWrk = %+v", r)
	}
	if m := wrkRequests.FindSubmatch(out); m == nil || string(m[1]) != "191677" {
		t.Fatalf("requests served: %q, want 191677 (the proxy's CPU is divided by it)", m)
	}
	if _, err := parseWrk([]byte("unable to connect to 127.0.0.1:1 Connection refused\n")); err == nil {
		t.Fatal("parseWrk accepted a report without figures")
	}
	us, err := parseWrk([]byte("     50%  812.00us\n     99%    2.00s\nRequests/sec:  1.5\n"))
	if err != nil || us.P50 != 812*time.Microsecond || us.P99 != 2*time.Second {
		t.Fatalf("units: %+v, %v", us, err)
	}
}
