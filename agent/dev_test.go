package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/auditexport/auditexport/internal/testenv"
)

// TestDevModeAsANewcomer runs `auditexport-agent dev`, checks that its
// banner says what to export and which role to use, runs the curl line it
// prints twice and waits for both events to appear where it says, delivered
// through the dev role.
func TestDevModeAsANewcomer(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("curl is needed to run the printed command")
	}
	dir := t.TempDir()
	infoFile := filepath.Join(dir, "dev.json")
	providerDir := filepath.Join(dir, "provider-bin")
	// stdout and stderr share one pipe, so the test sees the banner and the
	// log lines in the order the agent wrote them.
	out := &lineWriter{lines: make(chan string, 1024)}
	cmd := exec.Command(testenv.AgentBinary(t), "dev", "-listen", testenv.FreeAddr(t), "-tick", "1s",
		"-info-file", infoFile, "-provider-dir", providerDir)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
	})
	lines := readDevBanner(t, out)
	banner := strings.Join(lines, "\n")

	// The banner follows the startup log lines instead of being cut by them.
	started, top := indexOf(lines, "agent started"), indexOf(lines, "auditexport dev agent is running")
	if started < 0 || top < started {
		t.Fatalf("the banner (line %d) does not follow the startup line (line %d):\n%s", top, started, banner)
	}

	info := readInfoFile(t, infoFile)
	for _, want := range []string{
		"export AUDITEXPORT_ENDPOINT=" + info.Endpoint + "\n",
		"export AUDITEXPORT_TOKEN=" + info.ManageToken + "\n",
		"export TF_CLI_CONFIG_FILE=" + info.TerraformCLIConfig + "\n",
		`role_arn = "` + devRoleARN + `"`,
		"the dev tick overrides every destination's interval",
		"none is there yet, run `go install .`",
	} {
		if !strings.Contains(banner, want) {
			t.Errorf("the banner lacks %q:\n%s", want, banner)
		}
	}
	if info.RoleARN != devRoleARN || info.Tenant != devTenant || !strings.HasPrefix(info.ExternalID, "aex-") {
		t.Errorf("info file %+v: want role %s for tenant %s with its external id", info, devRoleARN, devTenant)
	}
	rc, err := os.ReadFile(info.TerraformCLIConfig)
	if err != nil {
		t.Fatal(err)
	}
	if want := `"` + providerAddress + `" = "` + providerDir + `"`; !strings.Contains(string(rc), "dev_overrides") || !strings.Contains(string(rc), want) {
		t.Errorf("%s lacks a dev_overrides entry %s:\n%s", info.TerraformCLIConfig, want, rc)
	}

	// Each run of the printed line is a new event, not a duplicate.
	curlLine, objectDir := bannerCommands(t, lines)
	for run := 1; run <= 2; run++ {
		out, err := exec.Command("bash", "-c", curlLine).CombinedOutput()
		if err != nil || !bytes.Contains(out, []byte(`"stored": 1`)) {
			t.Fatalf("run %d of the printed curl line: %v\n%s", run, err, out)
		}
	}
	if got := waitForEvents(t, objectDir, `"actor":"alice@example.com"`, 2, testenv.HangGuard); got != 2 {
		t.Fatalf("%d posted events delivered to %s, want 2", got, objectDir)
	}

	// SIGTERM stops dev mode cleanly and removes its temporary directory
	// and the info file.
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("dev mode exited with %v", err)
		}
	case <-time.After(testenv.HangGuard):
		t.Fatal("dev mode did not stop after SIGTERM")
	}
	for _, path := range []string{objectDir, infoFile} {
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Errorf("dev mode left %s behind", path)
		}
	}
}

// A dev agent restarted on the same -dir keeps its tenant and destination
// rather than adding one per start.
func TestDevModeRestartKeepsDestination(t *testing.T) {
	dir := t.TempDir()
	var ids []string
	for run := range 2 {
		infoFile := filepath.Join(t.TempDir(), "dev.json")
		out := &lineWriter{lines: make(chan string, 1024)}
		cmd := exec.Command(testenv.AgentBinary(t), "dev", "-listen", testenv.FreeAddr(t), "-dir", dir, "-info-file", infoFile)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		readDevBanner(t, out)
		ids = append(ids, readInfoFile(t, infoFile).DestinationID)
		_ = cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("run %d: dev mode exited with %v", run, err)
		}
	}
	if ids[0] == "" || ids[0] != ids[1] {
		t.Fatalf("destinations %q, want the first run's kept", ids)
	}
}

// lineWriter hands what the agent writes to the test line by line. The
// channel is large, and the reader keeps draining it, so the agent never
// blocks on its output.
type lineWriter struct {
	buf   []byte
	lines chan string
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		w.lines <- string(w.buf[:i])
		w.buf = w.buf[i+1:]
	}
}

// readDevBanner returns the lines the agent wrote up to the end of its
// banner (the destination status line), and keeps draining the rest.
func readDevBanner(t *testing.T, w *lineWriter) []string {
	t.Helper()
	var lines []string
	timeout := time.After(testenv.HangGuard)
	for {
		select {
		case line := <-w.lines:
			lines = append(lines, line)
			if strings.HasPrefix(line, "Destination status:") {
				go func() {
					for range w.lines {
					}
				}()
				return lines
			}
		case <-timeout:
			t.Fatalf("no banner after %s:\n%s", testenv.HangGuard, strings.Join(lines, "\n"))
		}
	}
}

// bannerCommands returns the curl line and the object directory the banner
// prints.
func bannerCommands(t *testing.T, lines []string) (curlLine, objectDir string) {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(strings.Join(lines, "\n")))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "curl ") && strings.Contains(line, "/events"):
			curlLine = line
		case curlLine != "" && objectDir == "" && strings.HasPrefix(line, "/") && strings.HasSuffix(line, "/"):
			objectDir = line
		}
	}
	if curlLine == "" || objectDir == "" {
		t.Fatalf("the banner has no curl line or object directory:\n%s", strings.Join(lines, "\n"))
	}
	return curlLine, objectDir
}

func indexOf(lines []string, substr string) int {
	for i, l := range lines {
		if strings.Contains(l, substr) {
			return i
		}
	}
	return -1
}

func readInfoFile(t *testing.T, path string) devInfo {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("info file: %v", err)
	}
	var info devInfo
	if err := json.Unmarshal(data, &info); err != nil {
		t.Fatalf("info file %s: %v", data, err)
	}
	return info
}

// waitForEvents polls dir's gzip NDJSON objects until they hold want lines
// containing substr, or within has passed, and returns how many they hold.
func waitForEvents(t *testing.T, dir, substr string, want int, within time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(within)
	got := 0
	for time.Now().Before(deadline) {
		if got = countEvents(t, dir, substr); got >= want {
			return got
		}
		time.Sleep(200 * time.Millisecond)
	}
	return got
}

func countEvents(t *testing.T, dir, substr string) int {
	t.Helper()
	matches, _ := filepath.Glob(filepath.Join(dir, "*.ndjson.gz"))
	n := 0
	for _, obj := range matches {
		f, err := os.Open(obj)
		if err != nil {
			t.Fatal(err)
		}
		// An object still being written reads short: count it at the next
		// poll.
		zr, err := gzip.NewReader(f)
		if err != nil {
			f.Close()
			continue
		}
		data, _ := io.ReadAll(zr)
		f.Close()
		n += strings.Count(string(data), substr)
	}
	return n
}
