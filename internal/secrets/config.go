package secrets

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/auditexport/auditexport/internal/config"
)

// GeneratedKeyFile is the key file made in the data directory when the
// configuration names no key.
const GeneratedKeyFile = "secrets.key"

// FromConfig builds the keyring the configuration names. With no key
// configured it uses DataDir/secrets.key, generating it on first start;
// generated is then the path of the new file, for the log.
func FromConfig(ctx context.Context, cfg *config.Config) (keys *Keyring, generated string, err error) {
	sc := cfg.Secrets
	if sc == nil {
		sc = &config.Secrets{}
	}
	var current KEK
	switch {
	case sc.KeyFile != "" || sc.KeyEnv != "" || sc.KMSKeyARN != "":
		current, err = kekFor(ctx, cfg, "secrets.", sc.KeyFile, sc.KeyEnv, sc.KMSKeyARN)
	default:
		path := filepath.Join(cfg.DataDir, GeneratedKeyFile)
		var created bool
		current, created, err = GenerateKeyFile(path)
		if err != nil {
			err = fmt.Errorf("secrets: the key file in the data directory: %w", err)
		}
		if created {
			generated = path
		}
	}
	if err != nil {
		return nil, "", err
	}
	var previous []KEK
	if sc.PreviousKeyFile != "" || sc.PreviousKeyEnv != "" || sc.PreviousKMSKeyARN != "" {
		p, err := kekFor(ctx, cfg, "secrets.previous_", sc.PreviousKeyFile, sc.PreviousKeyEnv, sc.PreviousKMSKeyARN)
		if err != nil {
			return nil, "", err
		}
		previous = append(previous, p)
	}
	return NewKeyring(current, previous...), generated, nil
}

// kekFor loads the one key source that is set; prefix names the fields in
// errors ("secrets." or "secrets.previous_").
func kekFor(ctx context.Context, cfg *config.Config, prefix, file, env, arn string) (KEK, error) {
	switch {
	case file != "":
		k, err := KeyFromFile(file)
		if err != nil {
			return nil, fmt.Errorf("%skey_file: %w", prefix, err)
		}
		return k, nil
	case env != "":
		k, err := KeyFromEnv(env)
		if err != nil {
			return nil, fmt.Errorf("%skey_env: %w", prefix, err)
		}
		return k, nil
	default:
		client, err := kmsClient(ctx, cfg, arn)
		if err != nil {
			return nil, fmt.Errorf("%skms_key_arn: %w", prefix, err)
		}
		return NewKMSKey(client, arn), nil
	}
}

// kmsClient is a KMS client in the key's region with the agent's AWS
// credentials (aws.access_key_id or the default chain).
func kmsClient(ctx context.Context, cfg *config.Config, arn string) (*kms.Client, error) {
	parts := strings.Split(arn, ":")
	if len(parts) < 6 || parts[2] != "kms" || parts[3] == "" {
		return nil, fmt.Errorf("%q is not a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID)", arn)
	}
	opts := []func(*awsconfig.LoadOptions) error{awsconfig.WithRegion(parts[3])}
	if cfg.AWS != nil && cfg.AWS.AccessKeyID != "" {
		opts = append(opts, awsconfig.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AWS.AccessKeyID, cfg.AWS.SecretAccessKey, "")))
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, err
	}
	return kms.NewFromConfig(awsCfg, func(o *kms.Options) {
		if cfg.Secrets != nil && cfg.Secrets.KMSEndpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Secrets.KMSEndpoint)
		}
	}), nil
}
