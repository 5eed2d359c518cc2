package s3sink

import (
	"fmt"

	"github.com/aws/smithy-go/logging"
	"github.com/hashicorp/go-hclog"
)

// SDKLogger returns a logger for aws.Config.Logger that routes the AWS
// SDK's own log lines (such as "falling back to IMDSv1") through log, so
// they carry the agent's format and level instead of going to stderr as
// bare "SDK ..." lines. NewPrincipal uses it when Options.Logger is set.
func SDKLogger(log hclog.Logger) logging.Logger { return sdkLogger{log} }

type sdkLogger struct{ log hclog.Logger }

func (l sdkLogger) Logf(c logging.Classification, format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	switch c {
	case logging.Warn:
		l.log.Warn(msg)
	case logging.Debug:
		l.log.Debug(msg)
	default:
		l.log.Info(msg, "classification", string(c))
	}
}
