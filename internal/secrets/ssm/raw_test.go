package ssm_test

import (
	"context"
	"net/http/httptest"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsssm "github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/spotlight/gateway/internal/secrets/ssm/ssmtest"
)

type rawClient struct{ c *awsssm.Client }

func newRawClient(srv *httptest.Server) rawClient {
	cfg := awsConfig(srv, ssmtest.DefaultAccessKeyID, ssmtest.DefaultSecretAccessKey)
	return rawClient{awsssm.NewFromConfig(cfg, func(o *awsssm.Options) { o.BaseEndpoint = aws.String(srv.URL) })}
}

func (r rawClient) put(ctx context.Context, name, value string) error {
	_, err := r.c.PutParameter(ctx, &awsssm.PutParameterInput{
		Name: aws.String(name), Value: aws.String(value), Type: types.ParameterTypeSecureString, Overwrite: aws.Bool(true),
	})
	return err
}
