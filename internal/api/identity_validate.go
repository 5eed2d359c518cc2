package api

import "regexp"

// Lengths of an sts:ExternalId that STS accepts.
const (
	MinExternalIDLen = 2
	MaxExternalIDLen = 1224
)

// Patterns of the Identity fields, for the plan-time validators of the
// policy data sources that take them as inputs.
var (
	// PrincipalARNRe matches the IAM principals a trust or bucket policy can
	// name: an account root, an IAM user or an IAM role.
	PrincipalARNRe = regexp.MustCompile(`^arn:aws[a-z-]*:iam::[0-9]{12}:(root|(user|role)/[\w+=,.@/-]{1,512})$`)
	// ExternalIDRe is the character set of an sts:ExternalId: letters,
	// digits and +=,.@:/-. Its length is checked separately.
	ExternalIDRe = regexp.MustCompile(`^[\w+=,.@:/-]*$`)
)
