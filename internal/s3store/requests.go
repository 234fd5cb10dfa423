package s3store

import (
	"context"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"
)

// countRequests returns a client option that calls count with the S3
// operation's name ("PutObject", "UploadPart", ...) for every request
// sent, retries included: a store bills each one. It sits in the
// deserialize step, which runs once per attempt, after the retry loop of
// the finalize step.
func countRequests(count func(op string)) func(*s3.Options) {
	return func(o *s3.Options) {
		o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
			return stack.Deserialize.Add(middleware.DeserializeMiddlewareFunc("wharfCountRequests",
				func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (
					middleware.DeserializeOutput, middleware.Metadata, error) {
					count(awsmiddleware.GetOperationName(ctx))
					return next.HandleDeserialize(ctx, in)
				}), middleware.After)
		})
	}
}

// CountRequests is the client option behind Options.CountRequest, for the
// clients NewObjects builds (a fleet's shared state): they count in the
// same wharf_s3_requests_total.
func CountRequests(count func(op string)) func(*s3.Options) { return countRequests(count) }
