package daemon

import (
	"context"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/hashicorp/go-hclog"

	"github.com/auditexport/auditexport/internal/config"
	"github.com/auditexport/auditexport/internal/s3sink"
)

// credentialsProbeTimeout bounds the look for credentials at start: the
// SDK's default chain ends with the EC2 instance metadata service, which
// may never answer off EC2.
const credentialsProbeTimeout = 10 * time.Second

// missingCredentialsFix is logged at start when the delivery principal has
// no credentials.
const missingCredentialsFix = "no AWS credentials for the delivery principal: events are still ingested, " +
	"but no destination can be tested or delivered to. Set aws.access_key_id and aws.secret_access_key " +
	"in the config, or provide credentials through the AWS SDK's default chain " +
	"(AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE with a shared credentials file, " +
	"or an instance, task or pod role), then restart the agent"

// principalStatus is the delivery principal with what the start-up check
// found, which the API's /healthz reports.
type principalStatus struct {
	*s3sink.Principal
	missing bool
}

// DeliveryPrincipal is "ok", or "missing" when the principal had no
// credentials at start.
func (p principalStatus) DeliveryPrincipal() string {
	if p.missing {
		return "missing"
	}
	return "ok"
}

// checkCredentials tells whether the delivery principal has credentials:
// static keys in the config, or credentials the SDK's default chain finds,
// which is what s3sink.NewPrincipal uses without them.
func checkCredentials(ctx context.Context, cfg *config.Config, log hclog.Logger) error {
	if cfg.AWS.AccessKeyID != "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, credentialsProbeTimeout)
	defer cancel()
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx,
		awsconfig.WithRegion(cfg.AWS.Region), awsconfig.WithLogger(s3sink.SDKLogger(log)))
	if err != nil {
		return err
	}
	_, err = awsCfg.Credentials.Retrieve(ctx)
	return err
}
