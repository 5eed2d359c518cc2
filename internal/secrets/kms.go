package secrets

import (
	"context"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// KMSAPI is the part of the KMS client a kmsKey uses.
type KMSAPI interface {
	GenerateDataKey(ctx context.Context, in *kms.GenerateDataKeyInput, opts ...func(*kms.Options)) (*kms.GenerateDataKeyOutput, error)
	Decrypt(ctx context.Context, in *kms.DecryptInput, opts ...func(*kms.Options)) (*kms.DecryptOutput, error)
}

// kmsContext is the KMS encryption context of every data key: CloudTrail
// shows it with each Decrypt, and a key policy can require it.
var kmsContext = map[string]string{"purpose": "auditexport destination secret"}

// kmsKey is a KEK kept in AWS KMS. Unwrapped data keys are cached, since
// every read of a destination opens its secret.
type kmsKey struct {
	arn    string
	client KMSAPI

	mu    sync.Mutex
	cache map[string][]byte
}

// NewKMSKey returns a KEK for the KMS key arn.
func NewKMSKey(client KMSAPI, arn string) KEK {
	return &kmsKey{arn: arn, client: client, cache: map[string][]byte{}}
}

func (k *kmsKey) ID() string { return "kms:" + k.arn }

func (k *kmsKey) NewDataKey(ctx context.Context) (plain, wrapped []byte, err error) {
	out, err := k.client.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{
		KeyId: aws.String(k.arn), KeySpec: types.DataKeySpecAes256, EncryptionContext: kmsContext,
	})
	if err != nil {
		return nil, nil, err
	}
	k.remember(out.CiphertextBlob, out.Plaintext)
	return out.Plaintext, out.CiphertextBlob, nil
}

func (k *kmsKey) OpenDataKey(ctx context.Context, wrapped []byte) ([]byte, error) {
	k.mu.Lock()
	plain, ok := k.cache[string(wrapped)]
	k.mu.Unlock()
	if ok {
		return plain, nil
	}
	out, err := k.client.Decrypt(ctx, &kms.DecryptInput{
		KeyId: aws.String(k.arn), CiphertextBlob: wrapped, EncryptionContext: kmsContext,
	})
	if err != nil {
		return nil, err
	}
	k.remember(wrapped, out.Plaintext)
	return out.Plaintext, nil
}

// maxCachedKeys bounds the cache; data keys of deleted or updated
// destinations stay in it until it is cleared.
const maxCachedKeys = 10000

func (k *kmsKey) remember(wrapped, plain []byte) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.cache) >= maxCachedKeys {
		clear(k.cache)
	}
	k.cache[string(wrapped)] = plain
}
