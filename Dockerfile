# One image for probe, parser and aggregator (`wirescope <service>`). From the repository root:
#   docker build -t wirescope:0.1.0 .
# Every step is scripts/build-image-steps.sh, which CI runs without Docker on a clean copy of the
# repository (test/build-image-steps.test.ts): what the image builds is what the tests build.
FROM node:20-bookworm AS build
WORKDIR /src
COPY . .
RUN bash scripts/build-image-steps.sh build

FROM node:20-bookworm-slim
COPY scripts/build-image-steps.sh /usr/local/lib/wirescope/build-image-steps.sh
RUN bash /usr/local/lib/wirescope/build-image-steps.sh runtime-deps
WORKDIR /app
COPY --from=build /src /app
# `node` (uid 1000): the parser and aggregator run as it; the probe's DaemonSet runs as uid 0
# with only the capabilities eBPF needs (deploy/k8s/base/probe.yaml).
USER 1000:1000
ENTRYPOINT ["node", "/app/bin/wirescope.js"]
CMD ["--help"]
