package ssm_test

import (
	"context"
	"fmt"
	"net/http/httptest"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/spotlight/gateway/internal/secrets"
	"github.com/spotlight/gateway/internal/secrets/ssm"
	"github.com/spotlight/gateway/internal/secrets/ssm/ssmtest"
)

// Example wires the SSM backend to the ssmtest simulator. In production,
// use ssm.New(ctx, ssm.Config{Endpoint: os.Getenv("GATEWAY_SSM_ENDPOINT")})
// and let the default chain find credentials and region.
func Example() {
	ctx := context.Background()
	srv := httptest.NewServer(ssmtest.New(ssmtest.Options{}))
	defer srv.Close()

	store, err := ssm.NewWithAWSConfig(aws.Config{
		Region:      ssmtest.DefaultRegion,
		Credentials: credentials.NewStaticCredentialsProvider(ssmtest.DefaultAccessKeyID, ssmtest.DefaultSecretAccessKey, ""),
	}, ssm.Config{Endpoint: srv.URL, KMSKeyID: "alias/spotlight"})
	if err != nil {
		panic(err)
	}
	path, _ := secrets.UserPath("spotlight", "dev", "0b5e-user", "google")
	v, _ := store.Put(ctx, path, []byte(`{"refresh_token":"..."}`), 0)
	sec, _ := store.Get(ctx, path)
	fmt.Println(v, sec.Path, string(sec.Value))
	// Output: 1 /spotlight/dev/users/0b5e-user/google {"refresh_token":"..."}
}
