# syntax=docker/dockerfile:1
# Multi-stage build of the Spotlight integration gateway for ECS.
# The build flags are the ones scripts/test checks (CGO_ENABLED=0, -trimpath).

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags="-s -w -X main.version=${VERSION}" \
      -o /out/gateway ./cmd/gateway
# The embedded default keeps its files in GATEWAY_DATA_DIR; give the non-root user a folder.
RUN mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/gateway /gateway
COPY --from=build --chown=65532:65532 /out/data /data
# The image is for deployment: it starts in production mode (Cognito, live
# providers, SSM, PostgreSQL) and refuses to start, listing what is missing,
# until the task definition sets them. A forgotten GATEWAY_ENV so fails
# closed instead of serving dev tokens and sandbox providers. To try the image
# with the sandbox: docker run -e GATEWAY_ENV=development -p 8080:8080 IMAGE
# The Prometheus metrics are served on a port of their own, never on the
# API's: API Gateway's integration reaches :8080 only, so /metrics cannot be
# routed to the internet by a catch-all route; scrape :9090 from inside the
# VPC (security group). Set GATEWAY_METRICS_ADDR= (empty) to serve them on
# :8080 again.
ENV GATEWAY_ENV=production \
    GATEWAY_ADDR=:8080 \
    GATEWAY_METRICS_ADDR=:9090 \
    GATEWAY_DATA_DIR=/data
USER 65532:65532
EXPOSE 8080 9090
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 CMD ["/gateway", "healthcheck"]
ENTRYPOINT ["/gateway"]
CMD ["serve"]
