# syntax=docker/dockerfile:1
# The cmarchive image: the release's static (musl) binary on distroless/static, which has CA certificates and a
# nonroot user but no shell and no package manager. The binary is the one in the release archives, not a second
# build: .github/workflows/release.yml stages one per platform, as scripts/dist build does for this machine's:
#
#   scripts/dist build x86_64-unknown-linux-musl
#   mkdir -p dist/image/linux-amd64 && cp dist/bin/x86_64-unknown-linux-musl/cmarchive dist/image/linux-amd64/
#   docker build --platform linux/amd64 -t cmarchive .
FROM gcr.io/distroless/static-debian12:nonroot
ARG TARGETARCH
COPY --chmod=0755 dist/image/linux-${TARGETARCH}/cmarchive /usr/local/bin/cmarchive
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/cmarchive"]
