package main

import (
	"os"
	"testing"

	"github.com/auditexport/auditexport/internal/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.RemoveAgentBinary()
	os.Exit(code)
}
