package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/wharf-sftp/wharf/internal/regfile"
)

// maxSecretFile bounds the read of secret_access_key_file, as for every
// other secret file wharf reads (a secret access key is 40 characters at
// AWS and rarely above 128 elsewhere).
const maxSecretFile = 64 << 10

// NewClient builds the S3 client for cfg. It validates cfg first, then:
//
//   - credentials: access_key_id with the secret read from
//     secret_access_key_file, else the SDK's default chain;
//   - endpoint and path_style as configured, region from cfg or the SDK;
//   - checksums computed and checked only where S3 requires them: since
//     service/s3 v1.73 the SDK sends CRC32 trailers on every upload, which
//     many S3-compatible stores refuse;
//   - the HTTP client is the SDK's own buildable client, so that a CA
//     bundle from AWS_CA_BUNDLE or a profile's ca_bundle is added to it.
//     With any other client the SDK refuses to start when such a bundle is
//     set ("unable to add custom RootCAs HTTPClient"). The bundle then
//     replaces the system roots for https endpoints, as in every AWS SDK
//     and the AWS CLI; a plain-http endpoint never uses it, so a loopback
//     test store works whether it is set or not. A bundle variable naming
//     a missing or empty file is an error here, at start-up.
//
// opts are applied last, for callers that tune the client (retries, test
// middleware).
func NewClient(ctx context.Context, cfg Config, opts ...func(*s3.Options)) (*s3.Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("s3 config: %w", err)
	}
	load := []func(*awsconfig.LoadOptions) error{
		awsconfig.WithHTTPClient(awshttp.NewBuildableClient()),
		awsconfig.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		awsconfig.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
	}
	if cfg.Region != "" {
		load = append(load, awsconfig.WithRegion(cfg.Region))
	}
	if cfg.AccessKeyID != "" {
		secret, err := readSecret(cfg.SecretAccessKeyFile)
		if err != nil {
			return nil, err
		}
		load = append(load, awsconfig.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, secret, "")))
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, fmt.Errorf("s3: load AWS configuration: %w", err)
	}
	if awsCfg.Region == "" {
		return nil, errors.New("s3: no region: set storage.s3.region (or AWS_REGION)")
	}
	return s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.PathStyle
		for _, opt := range opts {
			opt(o)
		}
	}), nil
}

// readSecret returns the secret access key in file name: its content with
// surrounding white space trimmed (an editor's final newline). The file is
// read through regfile, as every operator-named file: a regular file of at
// most maxSecretFile bytes, never a FIFO or a device. Errors name the
// file, never its content.
func readSecret(name string) (string, error) {
	b, err := regfile.Read(name, maxSecretFile)
	if err != nil {
		return "", fmt.Errorf("s3: secret_access_key_file: %w", err)
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return "", fmt.Errorf("s3: secret_access_key_file %s: empty", name)
	}
	if bytes.ContainsAny(b, "\r\n") {
		return "", fmt.Errorf("s3: secret_access_key_file %s: more than one line", name)
	}
	return string(b), nil
}
