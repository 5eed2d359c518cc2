package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditexport/auditexport/internal/config"
)

// The several-agents config is the bench's agent config with the leases and
// a shared secrets key added: the agent's own parser must accept it and
// read back what the phase relies on.
func TestAgentsConfigLoads(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "secrets.key")
	if err := writeSecretsKey(keyFile); err != nil {
		t.Fatal(err)
	}
	st := &benchStore{block: "\nsecrets {\n  key_file = \"" + keyFile + "\"\n}\n"}
	s3 := &s3Server{url: "http://127.0.0.1:1", accessKey: "AKIAEXAMPLE", secret: "secret"}
	a, err := newAgentProc("auditexport-agent", dir, s3, st)
	if err != nil {
		t.Fatal(err)
	}
	if err := setLeases(a, "agent-2"); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(a.config)
	if err != nil {
		t.Fatalf("the agent's parser refuses the config: %v", err)
	}
	d := cfg.Delivery
	if d.AgentID != "agent-2" || d.LeaseTTL != 3*time.Second || d.LeaseRenew != time.Second || d.Tick != time.Second {
		t.Errorf("delivery = agent_id %q, lease_ttl %s, lease_renew %s, tick %s; want agent-2, 3s, 1s, 1s", d.AgentID, d.LeaseTTL, d.LeaseRenew, d.Tick)
	}
	if cfg.Secrets == nil || cfg.Secrets.KeyFile != keyFile {
		t.Errorf("secrets = %+v, want key_file %s", cfg.Secrets, keyFile)
	}
	// A second call would repeat the attributes, which HCL refuses.
	if err := setLeases(a, "agent-3"); err == nil || !strings.Contains(err.Error(), "sets the leases already") {
		t.Errorf("setLeases on a config that has them = %v, want an error saying so", err)
	}
}

func TestWriteSecretsKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k")
	if err := writeSecretsKey(path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %o, want 600", fi.Mode().Perm())
	}
	data, _ := os.ReadFile(path)
	// 32 bytes in padded base64 and a newline.
	if len(data) != 45 || data[44] != '\n' {
		t.Errorf("key file %q, want 44 base64 characters and a newline", data)
	}
}

func TestParseFlagsBenchRows(t *testing.T) {
	for _, tc := range []struct {
		args []string
		flag string // named in the error; "" when the flags are valid
	}{
		{args: nil},
		{args: []string{"-verify-days", "0", "-digest-windows", "0", "-agents-dests", "0"}},
		{args: []string{"-verify-days", "-1"}, flag: "-verify-days"},
		{args: []string{"-verify-days", "400"}, flag: "-verify-days"},
		{args: []string{"-verify-objects", "-1"}, flag: "-verify-objects"},
		{args: []string{"-digest-windows", "-1"}, flag: "-digest-windows"},
		{args: []string{"-digest-window-events", "0"}, flag: "-digest-window-events"},
		{args: []string{"-agents-dests", "101"}, flag: "-agents-dests"},
		{args: []string{"-agents-dests", "-2"}, flag: "-agents-dests"},
	} {
		o, err := parseFlags(tc.args)
		if tc.flag == "" {
			if err != nil {
				t.Errorf("parseFlags(%q): %v", tc.args, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.flag) {
			t.Errorf("parseFlags(%q) = %+v, %v; want an error naming %s", tc.args, o, err, tc.flag)
		}
	}
	o, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.verifyDays != 30 || o.verifyObjects != 10 || o.digestWindows != 60 || o.agentDests != 6 {
		t.Errorf("defaults: -verify-days %d -verify-objects %d -digest-windows %d -agents-dests %d; want 30, 10, 60, 6",
			o.verifyDays, o.verifyObjects, o.digestWindows, o.agentDests)
	}
}

// preciseCPU counts the CPU a process's threads use, in finer steps than
// /proc/<pid>/stat's 10 ms ticks.
func TestPreciseCPUCountsWork(t *testing.T) {
	pid := os.Getpid()
	before := preciseCPU(pid)
	deadline := time.Now().Add(time.Minute) // a hang guard on a busy machine
	x := 1
	for preciseCPU(pid)-before < 5*time.Millisecond {
		for i := range 1_000_000 {
			x = x*31 + i
		}
		if time.Now().After(deadline) {
			t.Fatalf("preciseCPU grew by %s after a minute of work", preciseCPU(pid)-before)
		}
	}
	if x == 0 {
		t.Log(x) // keeps the loop
	}
	if got, ticks := preciseCPU(pid), procCPU(pid); got < ticks-20*time.Millisecond {
		t.Errorf("preciseCPU %s is well below the process's stat %s", got, ticks)
	}
}
