package main

import (
	"bytes"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseStores(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		err  bool
	}{
		{in: "sqlite,postgres", want: []string{"sqlite", "postgres"}},
		{in: "postgres,sqlite", want: []string{"sqlite", "postgres"}},
		{in: "postgres", want: []string{"postgres"}},
		{in: " sqlite , sqlite ", want: []string{"sqlite"}},
		{in: "mysql", err: true},
		{in: "sqlite,", err: true},
		{in: "", err: true},
	} {
		got, err := parseStores(tc.in)
		if tc.err {
			if err == nil || !strings.Contains(err.Error(), "-store") {
				t.Errorf("parseStores(%q) = %v, %v; want an error naming -store", tc.in, got, err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("parseStores(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestParseFlagsStoreDefault(t *testing.T) {
	o, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"sqlite", "postgres"}; !slices.Equal(o.stores, want) {
		t.Fatalf("default stores %v, want %v", o.stores, want)
	}
}

// TestTreeCPUCountsReapedChildren checks that the CPU of a child that has
// exited and been waited for still counts in its parent's tree, as the
// backends a PostgreSQL server forks and reaps during a phase must.
func TestTreeCPUCountsReapedChildren(t *testing.T) {
	self := os.Getpid()
	before := treeCPU(self)
	if before <= 0 {
		t.Fatalf("treeCPU of the test process = %s", before)
	}
	// Busy for about 0.1-0.5 s of CPU, however slow the machine.
	cmd := exec.Command("sh", "-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	child := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	if child < 30*time.Millisecond {
		t.Fatalf("the child used only %s of CPU: the test proves nothing", child)
	}
	grew := treeCPU(self) - before
	// /proc counts in ticks of 10 ms.
	if grew < child-2*time.Second/clockTicks {
		t.Fatalf("treeCPU grew by %s while a reaped child used %s", grew, child)
	}
}

// TestReportColumns checks that the stores' figures are printed side by
// side, one column per store, and that a disturbed phase is flagged in its
// own column only.
func TestReportColumns(t *testing.T) {
	lat := []time.Duration{time.Millisecond, 2 * time.Millisecond}
	mk := func(name, title string, pid int, rate float64, other float64) *storeRun {
		ev := int64(100_000)
		el := time.Duration(float64(ev) / rate * float64(time.Second))
		sr := stageResult{events: ev, bytesIn: ev * 400, bytesOut: ev * 40, objects: 3, elapsed: el / 2}
		return &storeRun{
			st: &benchStore{name: name, title: title, desc: title + ": test", pid: pid},
			ingest: ingestResult{events: ev, bytes: ev * 400, requests: 100, batch: 1000, clients: 8,
				elapsed: el, latency: lat, cpu: cpuUse{agent: 1, other: other}},
			delivery: deliveryResult{events: ev, bytesIn: ev * 400, bytesOut: ev * 40, statusBytes: ev * 40,
				objects: make([]object, 3), elapsed: el, wall: el},
			stages: stages{read: sr, compress: sr, put: sr, sizesMatch: true,
				appendLimit: stageResult{events: ev, elapsed: el / 4}},
		}
	}
	r := &report{opts: options{batch: 1000, clients: 8}, runs: []*storeRun{mk(storeSQLite, "SQLite", 0, 200_000, 0), mk(storePostgres, "PostgreSQL", 4242, 50_000, 0.5)}}
	var b bytes.Buffer
	r.print(&b)
	out := b.String()
	for _, want := range []string{
		"SQLite   PostgreSQL",
		"durable ingest                      200,000       50,000 events/s",
		"ingest target                       150,000       80,000 events/s",
		"                                       PASS        BELOW",
		"store append limit                  800,000      200,000 events/s",
		"durable ingest / append limit          0.25         0.25",
		"CPU: PostgreSQL server",
		"other work on the CPUs                 none    DISTURBED",
		"WINDOW: skipped",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}
