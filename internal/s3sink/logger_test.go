package s3sink

import (
	"bytes"
	"strings"
	"testing"

	"github.com/aws/smithy-go/logging"
	"github.com/hashicorp/go-hclog"
)

func TestSDKLoggerKeepsTheLevel(t *testing.T) {
	tests := []struct {
		class logging.Classification
		want  string
	}{
		{logging.Warn, "[WARN]  aws: falling back to IMDSv1"},
		{logging.Debug, "[DEBUG] aws: falling back to IMDSv1"},
		{"OTHER", "[INFO]  aws: falling back to IMDSv1: classification=OTHER"},
	}
	for _, tt := range tests {
		t.Run(string(tt.class), func(t *testing.T) {
			var out bytes.Buffer
			log := hclog.New(&hclog.LoggerOptions{Name: "aws", Level: hclog.Trace, Output: &out})
			sdkLogger{log}.Logf(tt.class, "falling back to %s", "IMDSv1")
			if !strings.Contains(out.String(), tt.want) {
				t.Errorf("logged %q, want it to contain %q", out.String(), tt.want)
			}
		})
	}
}
