package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/auditexport/auditexport/internal/api"
	"github.com/auditexport/auditexport/internal/config"
	"github.com/auditexport/auditexport/internal/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pg.Close()
	testenv.RemoveAgentBinary()
	os.Exit(code)
}

// runAgent runs the agent binary in dir with env added to a clean
// environment (no AUDITEXPORT_CONFIG or AUDITEXPORT_DATABASE_URL of the
// machine's), and returns its
// stdout, stderr and exit code.
func runAgent(t *testing.T, dir string, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(testenv.AgentBinary(t), args...)
	cmd.Dir = dir
	cmd.Env = append(withoutEnv(os.Environ(), config.EnvConfig, config.EnvDatabaseURL), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("auditexport-agent %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errOut.String(), code
}

func withoutEnv(env []string, names ...string) []string {
	var out []string
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		keep := true
		for _, n := range names {
			if name == n || (strings.HasSuffix(n, "*") && strings.HasPrefix(name, strings.TrimSuffix(n, "*"))) {
				keep = false
			}
		}
		if keep {
			out = append(out, kv)
		}
	}
	return out
}

// Every command answers -h and -help with its own usage, listing each of
// its flags, and exits 0; every flag is in the whole usage and the README.
func TestHelpListsEveryFlag(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args  []string
		flags []string
	}{
		{[]string{"serve"}, []string{"config"}},
		{[]string{"migrate"}, []string{"config"}},
		{[]string{"dev"}, []string{"listen", "s3-listen", "dir", "tick", "info-file", "provider-dir"}},
		{[]string{"tenant"}, []string{"config", "data-dir"}},
		{[]string{"tenant", "create"}, []string{"config", "data-dir"}},
		{[]string{"tenant", "list"}, []string{"config", "data-dir"}},
		{[]string{"token", "create"}, []string{"config", "data-dir", "tenant", "scope"}},
		{[]string{"signing-key", "list"}, []string{"config", "data-dir"}},
		{[]string{"signing-key", "rotate"}, []string{"config", "data-dir"}},
		{[]string{"verify"}, []string{"bucket", "prefix", "destination", "from", "to", "keys", "keys-url", "region", "endpoint-url", "parallel", "json"}},
	}
	flagLine := regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`)
	for _, tt := range tests {
		for _, help := range []string{"-h", "-help"} {
			args := append(append([]string{}, tt.args...), help)
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				stdout, stderr, code := runAgent(t, t.TempDir(), nil, args...)
				if code != 0 || stderr != "" {
					t.Fatalf("exit %d, stderr %q; want 0 and nothing", code, stderr)
				}
				if !strings.Contains(stdout, "auditexport-agent "+tt.args[0]) {
					t.Errorf("usage does not name the command:\n%s", stdout)
				}
				var listed []string
				for _, m := range flagLine.FindAllStringSubmatch(stdout, -1) {
					listed = append(listed, m[1])
				}
				if strings.Join(listed, " ") != strings.Join(sorted(tt.flags), " ") {
					t.Errorf("usage lists flags %v, want %v:\n%s", listed, sorted(tt.flags), stdout)
				}
				for _, f := range listed {
					if !strings.Contains(usage, "-"+f) {
						t.Errorf("the whole usage does not mention -%s", f)
					}
					if !bytes.Contains(readme, []byte("-"+f)) {
						t.Errorf("README.md does not mention -%s", f)
					}
				}
			})
		}
	}
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

// A bad flag still exits 2 with the command's usage, not the whole one.
func TestBadFlagShowsTheCommandsUsage(t *testing.T) {
	stdout, stderr, code := runAgent(t, t.TempDir(), nil, "tenant", "create", "acme", "-no-such-flag")
	if code != 2 || stdout != "" || !strings.Contains(stderr, "-no-such-flag") || !strings.Contains(stderr, "-data-dir") ||
		strings.Contains(stderr, "auditexport-agent dev") {
		t.Fatalf("exit %d, stdout %q, stderr:\n%s\nwant 2 and the tenant command's usage on stderr", code, stdout, stderr)
	}
}

// An operator command pointed at a data directory without a store fails,
// naming the path and the fixes, and creates nothing there.
func TestAdminCommandsNeedAnExistingStore(t *testing.T) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	cfg := filepath.Join(dir, "agent.hcl")
	if err := os.WriteFile(cfg, []byte("data_dir = \""+dataDir+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	otherDir := filepath.Join(dir, "other")
	tests := []struct {
		name     string
		env      []string
		args     []string
		wantPath string
	}{
		{"-config", nil, []string{"tenant", "create", "acme", "-config", cfg}, dataDir},
		{config.EnvConfig, []string{config.EnvConfig + "=" + cfg}, []string{"tenant", "create", "acme"}, dataDir},
		{"-data-dir over the config", []string{config.EnvConfig + "=" + cfg}, []string{"token", "create", "-scope", "ingest", "-data-dir", otherDir}, otherDir},
		{"tenant list", nil, []string{"tenant", "list", "-config", cfg}, dataDir},
		{"manage token", nil, []string{"token", "create", "-tenant", "acme", "-config", cfg}, dataDir},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := runAgent(t, dir, tt.env, tt.args...)
			if code != 1 || stdout != "" {
				t.Fatalf("exit %d, stdout %q; want 1 and nothing printed; stderr:\n%s", code, stdout, stderr)
			}
			for _, want := range []string{filepath.Join(tt.wantPath, "auditexport.db"), "-config", config.EnvConfig, "-data-dir", "auditexport-agent serve"} {
				if !strings.Contains(stderr, want) {
					t.Errorf("error %q does not mention %q", stderr, want)
				}
			}
			for _, d := range []string{dataDir, otherDir, filepath.Join(dir, "auditexport-data")} {
				if _, err := os.Stat(d); !os.IsNotExist(err) {
					t.Errorf("%s was created (%v)", d, err)
				}
			}
		})
	}
}

// readmeCommands returns the auditexport-agent command lines of the README's
// "Running the agent" block, without their comments.
func readmeCommands(t *testing.T) []string {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	section, block := false, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "## "):
			section = line == "## Running the agent"
		case section && strings.HasPrefix(line, "```"):
			if block {
				return lines
			}
			block = true
		case section && block:
			cmd, _, _ := strings.Cut(line, "#")
			if cmd = strings.TrimSpace(cmd); strings.HasPrefix(cmd, "auditexport-agent ") {
				lines = append(lines, cmd)
			}
		}
	}
	t.Fatal("README.md has no command block under \"## Running the agent\"")
	return nil
}

// The README's operator commands, exactly as printed, work against the
// agent that its serve line runs: the tokens they print are accepted.
func TestReadmeOperatorCommands(t *testing.T) {
	lines := readmeCommands(t)
	a := testenv.NewAgentWithOptions(t, testenv.StartMoto(t), testenv.AgentOptions{Tick: "1h", Stopped: true})
	env := []string{config.EnvConfig + "=" + a.Config}
	dir := t.TempDir() // the commands run elsewhere than the data dir
	var externalID, manage string
	var ingest []string
	for _, line := range lines {
		args := strings.Fields(line)[1:]
		if args[0] == "serve" {
			a.StartWith(t, append(withoutEnv(os.Environ(), config.EnvConfig), env...), args...)
			continue
		}
		stdout, stderr, code := runAgent(t, dir, env, args...)
		if code != 0 {
			t.Fatalf("%s: exit %d\n%s", line, code, stderr)
		}
		switch {
		case args[0] == "tenant":
			m := regexp.MustCompile(`external id: (\S+)`).FindStringSubmatch(stdout)
			if m == nil {
				t.Fatalf("%s printed no external id: %q", line, stdout)
			}
			externalID = m[1]
		case strings.Contains(line, "-scope ingest"):
			ingest = append(ingest, strings.TrimSpace(stdout))
		case strings.Contains(line, "-tenant"):
			manage = strings.TrimSpace(stdout)
		}
	}
	if externalID == "" || manage == "" || len(ingest) == 0 {
		t.Fatalf("the README block %q does not create a tenant, a manage and an ingest token", lines)
	}
	id, err := a.Client(t, manage).Identity(context.Background())
	if err != nil || id.ExternalID != externalID {
		t.Fatalf("identity with the README's manage token = %+v, %v; want external id %s", id, err, externalID)
	}
	for i, tok := range ingest {
		res, err := a.Client(t, tok).PostEvents(context.Background(), id.Tenant, []byte(auditEvent(fmt.Sprintf("readme-%d", i), time.Now(), "user.login")))
		if err != nil || res.Stored != 1 {
			t.Errorf("posting with the README's ingest token %d = %+v, %v; want 1 stored", i+1, res, err)
		}
	}
}

// Without AWS credentials serve starts, warns once naming the fix, and
// /healthz reports the missing principal with 200 while /v1/identity
// answers 503.
func TestServeWithoutCredentials(t *testing.T) {
	dir := t.TempDir()
	addr := testenv.FreeAddr(t)
	cfg := filepath.Join(dir, "agent.hcl")
	if err := os.WriteFile(cfg, []byte("listen = \""+addr+"\"\ndata_dir = \""+filepath.Join(dir, "data")+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Nothing of the machine's AWS setup applies, and the instance metadata
	// service is not asked.
	env := append(withoutEnv(os.Environ(), "AWS_*", config.EnvConfig),
		"HOME="+dir, "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "none"), "AWS_CONFIG_FILE="+filepath.Join(dir, "none"),
		"AWS_EC2_METADATA_DISABLED=true", config.EnvConfig+"="+cfg)
	cmd := exec.Command(testenv.AgentBinary(t), "serve")
	cmd.Env = env
	var log testenv.SyncBuffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	var health map[string]string
	testenv.WaitFor(t, "/healthz to answer", func() (bool, string) {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			return false, err.Error() + "\n" + log.String()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("/healthz = %s %s, want 200 so that ingest keeps its traffic", resp.Status, body)
		}
		if err := json.Unmarshal(body, &health); err != nil {
			t.Fatalf("/healthz body %q: %v", body, err)
		}
		return true, ""
	})
	if health["delivery_principal"] != "missing" {
		t.Errorf("/healthz = %v, want delivery_principal missing", health)
	}
	if n := strings.Count(log.String(), "no AWS credentials for the delivery principal"); n != 1 {
		t.Errorf("the warning is logged %d times, want once:\n%s", n, log.String())
	}
	for _, fix := range []string{"aws.access_key_id", "AWS_ACCESS_KEY_ID", "AWS_PROFILE", "[WARN]"} {
		if !strings.Contains(log.String(), fix) {
			t.Errorf("the log does not mention %s:\n%s", fix, log.String())
		}
	}

	runOK := func(args ...string) string {
		stdout, stderr, code := runAgent(t, dir, []string{config.EnvConfig + "=" + cfg}, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d\n%s", args, code, stderr)
		}
		return strings.TrimSpace(stdout)
	}
	runOK("tenant", "create", "acme")
	manage, err := api.NewClient("http://"+addr, runOK("token", "create", "-tenant", "acme"), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = manage.Identity(context.Background())
	var ae *api.APIError
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("identity without credentials: %v, want 503", err)
	}
}
