# NanoProxy container image: one image for both commands.
#
#   docker build -t nanoproxy:0.1.0 .
#   docker run --rm -p 8080:8080 --read-only -v "$PWD/examples:/conf:ro" nanoproxy:0.1.0   # proxy, examples/config.yaml
#   docker run --rm nanoproxy:0.1.0 controller --help
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
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

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
