# The platform's images, one target per service (docker-compose.yml builds them):
#
#   docker build --target gateway -t codelab/gateway .        (auth | gateway | runtime | llm-proxy | web)
#
# Node runs the TypeScript sources as they are (type stripping, no build step); production
# dependencies only (no dev tools, no embedded database engine: the images always use PostgreSQL);
# the `node` user (uid 1000), never root; no secret, key or .env in any layer: everything secret
# comes from the environment at run time. Node is PID 1 and handles SIGTERM itself: it stops
# accepting, lets turns in flight finish within <P>__SHUTDOWN_GRACE_SECONDS, closes WebSockets with
# 1001 and exits 0 (`docker stop` waits stop_grace_period for it).
#
# BASE is the official Node image of the LTS the project runs on; a mirror or a locally built
# image with the same layout can stand in (`--build-arg BASE=…`). Behind a TLS-intercepting proxy,
# hand its CA to npm: `DOCKER_BUILDKIT=1 docker build --secret id=extra_ca,src=/path/ca.pem …`.
ARG BASE=node:26-bookworm-slim

# The workspace's manifests and lockfile: what both installs below start from.
FROM ${BASE} AS manifests
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
COPY packages/protocol/package.json packages/protocol/
COPY packages/service-kit/package.json packages/service-kit/
COPY services/auth/package.json services/auth/
COPY services/gateway/package.json services/gateway/
COPY services/llm-proxy/package.json services/llm-proxy/
COPY services/runtime/package.json services/runtime/
COPY services/web/package.json services/web/

FROM manifests AS deps
RUN --mount=type=secret,id=extra_ca,required=false \
    if [ -s /run/secrets/extra_ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/extra_ca; fi; \
    npm ci --omit=dev --omit=optional --no-audit --no-fund --loglevel=warn \
    && npm cache clean --force \
    && rm -rf /root/.npm /tmp/*

# The website's page: `vite build` of services/web/ui (its build tools are dev dependencies of
# @codelab/web only, installed here and left behind: the web image gets the built files alone).
FROM manifests AS web-page
RUN --mount=type=secret,id=extra_ca,required=false \
    if [ -s /run/secrets/extra_ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/extra_ca; fi; \
    npm ci --workspace @codelab/web --include-workspace-root=false --no-audit --no-fund --loglevel=warn
COPY services/web/ui/ ./services/web/ui/
RUN npm run build --workspace @codelab/web

FROM ${BASE} AS service
# NODE_COMPILE_CACHE: each target compiles its modules once at build time (TypeScript stripped,
# V8 code cached), which halves the time from start to listening.
ENV NODE_ENV=production \
    CODELAB_DATA_DIR=/data \
    NODE_COMPILE_CACHE=/app/.compile-cache
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY packages/ ./packages/
RUN mkdir -p /data/auth/keys /app/.compile-cache && chown -R node:node /data /app/.compile-cache
USER node
STOPSIGNAL SIGTERM

FROM service AS auth
COPY services/auth/ ./services/auth/
RUN node --input-type=module -e "await import('@codelab/service-kit/boot'); await import('@codelab/service-kit'); await import('./services/auth/src/app.ts'); process.exit(0)"
ENV AUTH_SERVICE__HOST=0.0.0.0 AUTH_SERVICE__PORT=8003
EXPOSE 8003
HEALTHCHECK --interval=5s --timeout=3s --start-period=60s --retries=3 \
    CMD ["/app/packages/service-kit/bin/healthcheck", "8003"]
CMD ["node", "services/auth/src/main.ts"]

FROM service AS gateway
COPY services/gateway/ ./services/gateway/
RUN node --input-type=module -e "await import('@codelab/service-kit/boot'); await import('@codelab/service-kit'); await import('./services/gateway/src/app.ts'); process.exit(0)"
ENV GATEWAY__HOST=0.0.0.0 GATEWAY__PORT=8000
EXPOSE 8000
HEALTHCHECK --interval=5s --timeout=3s --start-period=60s --retries=3 \
    CMD ["/app/packages/service-kit/bin/healthcheck", "8000"]
CMD ["node", "services/gateway/src/main.ts"]

FROM service AS runtime
COPY services/runtime/ ./services/runtime/
RUN node --input-type=module -e "await import('@codelab/service-kit/boot'); await import('@codelab/service-kit'); await import('./services/runtime/src/app.ts'); process.exit(0)"
ENV AGENT_RUNTIME__HOST=0.0.0.0 AGENT_RUNTIME__PORT=8001
EXPOSE 8001
HEALTHCHECK --interval=5s --timeout=3s --start-period=60s --retries=3 \
    CMD ["/app/packages/service-kit/bin/healthcheck", "8001"]
CMD ["node", "services/runtime/src/main.ts"]

FROM service AS llm-proxy
COPY services/llm-proxy/ ./services/llm-proxy/
RUN node --input-type=module -e "await import('@codelab/service-kit/boot'); await import('@codelab/service-kit'); await import('./services/llm-proxy/src/app.ts'); process.exit(0)"
ENV LLM_PROXY__HOST=0.0.0.0 LLM_PROXY__PORT=8002
EXPOSE 8002
HEALTHCHECK --interval=5s --timeout=3s --start-period=60s --retries=3 \
    CMD ["/app/packages/service-kit/bin/healthcheck", "8002"]
CMD ["node", "services/llm-proxy/src/main.ts"]

# The website at / (nginx sends every path no service claims here): the built page, and the README
# and docs/ it renders.
FROM service AS web
COPY services/web/src/ ./services/web/src/
COPY services/web/package.json ./services/web/
COPY --from=web-page /app/services/web/ui/dist/ ./services/web/ui/dist/
COPY README.md ./
COPY docs/ ./docs/
RUN node --input-type=module -e "await import('@codelab/service-kit/boot'); await import('@codelab/service-kit'); await import('./services/web/src/app.ts'); process.exit(0)"
ENV WEB__HOST=0.0.0.0 WEB__PORT=3000
EXPOSE 3000
HEALTHCHECK --interval=5s --timeout=3s --start-period=60s --retries=3 \
    CMD ["/app/packages/service-kit/bin/healthcheck", "3000"]
CMD ["node", "services/web/src/main.ts"]
