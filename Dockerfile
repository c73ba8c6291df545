# Builds the operator image. Not built by CI here (the build machines run
# no container engine); `make build` produces the same binary.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY internal/ internal/
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /metrics-operator ./cmd/metrics-operator

FROM gcr.io/distroless/static:nonroot
COPY --from=build /metrics-operator /metrics-operator
USER 65532:65532
ENTRYPOINT ["/metrics-operator"]
