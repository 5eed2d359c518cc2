package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
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

// TestDevModeAsANewcomer runs `auditexport-agent dev`, runs the curl line it
// prints and waits for the object to appear where it says.
func TestDevModeAsANewcomer(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("curl is needed to run the printed command")
	}
	cmd := exec.Command(testenv.AgentBinary(t), "dev", "-listen", testenv.FreeAddr(t), "-tick", "1s")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr testenv.SyncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
	})
	curlLine, objectDir := readDevBanner(t, stdout, &stderr)

	out, err := exec.Command("bash", "-c", curlLine).CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte(`"stored": 1`)) {
		t.Fatalf("the printed curl line failed: %v\n%s", err, out)
	}
	obj := waitForObject(t, objectDir, 15*time.Second)
	f, err := os.Open(obj)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s is not gzip: %v", obj, err)
	}
	data, _ := io.ReadAll(zr)
	if !strings.Contains(string(data), `"actor":"alice@example.com"`) {
		t.Fatalf("object %s holds %q, not the posted event", obj, data)
	}

	// SIGTERM stops dev mode cleanly and removes its temporary directory.
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("dev mode exited with %v:\n%s", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("dev mode did not stop after SIGTERM")
	}
	if _, err := os.Stat(objectDir); !os.IsNotExist(err) {
		t.Fatalf("dev mode left %s behind", objectDir)
	}
}

// readDevBanner returns the curl line and the object directory that dev mode
// prints.
func readDevBanner(t *testing.T, r io.Reader, stderr *testenv.SyncBuffer) (curlLine, objectDir string) {
	t.Helper()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	timeout := time.After(30 * time.Second)
	for objectDir == "" {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("dev mode exited before printing its banner:\n%s", stderr.String())
			}
			line = strings.TrimSpace(line)
			switch {
			case strings.HasPrefix(line, "curl ") && strings.Contains(line, "/events"):
				curlLine = line
			case curlLine != "" && strings.HasPrefix(line, "/") && strings.HasSuffix(line, "/"):
				objectDir = line
			}
		case <-timeout:
			t.Fatalf("no banner after 30s:\n%s", stderr.String())
		}
	}
	go func() {
		for range lines { // keep draining so the agent never blocks on stdout
		}
	}()
	return curlLine, objectDir
}

func waitForObject(t *testing.T, dir string, within time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		matches, _ := filepath.Glob(filepath.Join(dir, "*.ndjson.gz"))
		if len(matches) > 0 {
			return matches[0]
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("no object appeared in %s within %s", dir, within)
	return ""
}
