# NanoProxy container image: one image for both commands.
#
#   docker build -t nanoproxy:0.1.0 .        # podman/buildah: stored as localhost/nanoproxy:0.1.0
#   docker run --rm -p 8080:8080 --read-only -v "$PWD/examples:/conf:ro" nanoproxy:0.1.0   # proxy, examples/config.yaml
#   docker run --rm nanoproxy:0.1.0 controller --help
#
# 0.1.0 is the version in package.json, the tag the Helm chart deploys by
# default. The build needs the npm registry (both `npm ci` steps). Behind a
# TLS-intercepting proxy, pass its CA certificate (PEM) as a build secret:
#
#   docker build --secret id=npm_ca,src=/path/to/proxy-ca.pem -t nanoproxy:0.1.0 .
#
# It is mounted at /run/secrets/npm_ca for the npm steps only
# (NODE_EXTRA_CA_CERTS points at it) and is in no layer of the image; without
# the secret the steps run as they are. RUN --mount needs BuildKit (Docker 23
# or newer), podman or buildah. --build-arg NODE_IMAGE=... replaces the base
# image (a registry mirror, a pinned digest): a Debian-based Node.js 24 image.
#
# The `build` stage compiles the TypeScript sources to JavaScript (`npm run
# build`: src/ to dist/, with the dev dependencies); the `deps` stage installs
# the production dependencies. The image holds bin/, dist/ and those
# dependencies only: no src/, so bin/nanoproxy runs dist/ (plain JavaScript
# starts without Node's type stripping, ~26 MB less RSS). bin/nanoproxy uses
# the image's Node.js 24 (the `node` dev dependency is not installed) and
# execs it, so Node is PID 1 and handles SIGTERM itself (graceful drain).
# It writes only to /conf (the config file) and /tmp, so it runs with a
# read-only root filesystem. test/deploy/dockerfile.test.ts runs this file's
# npm commands and COPY steps on a clean copy of the repository.

ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN --mount=type=secret,id=npm_ca \
    if [ -f /run/secrets/npm_ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/npm_ca; fi; \
    npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN --mount=type=secret,id=npm_ca \
    if [ -f /run/secrets/npm_ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/npm_ca; fi; \
    npm ci --omit=dev --ignore-scripts --no-audit --no-fund

FROM ${NODE_IMAGE}
RUN groupadd --system --gid 10001 nanoproxy \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin nanoproxy \
 && mkdir /conf \
 && chown 10001:10001 /conf
ENV NODE_ENV=production \
    CONF_FILE=/conf/config.yaml
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY bin ./bin
USER 10001:10001
# 8080: the proxy (PORT); 9090: the controller's /healthz and /readyz (PORT).
EXPOSE 8080 9090
ENTRYPOINT ["/app/bin/nanoproxy"]
CMD ["proxy"]
