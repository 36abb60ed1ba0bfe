# syntax=docker/dockerfile:1
# One image, three roles: APP_ROLE=api|worker|all runs the backend; the `ml` service runs the reference
# segmenter from the same image (command: npm run segmenter:prod).

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json nest-cli.json .swcrc ./
COPY src ./src
COPY migrations ./migrations
COPY bench ./bench
COPY test/support ./test/support
COPY test/fixtures ./test/fixtures
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production UPLOAD_DIR=/data/uploads
# V8 heap of a serving process (README "Memory"): without a cap V8 lets the old generation fill with
# request garbage up to ~2x before a full GC (api RSS 260-290 MiB under load); with it 150-160 MiB.
# Workers override it (deploy/k8s/worker.yaml, docker-compose.yml).
ENV NODE_OPTIONS="--max-old-space-size=160 --max-semi-space-size=8"
RUN apt-get update && apt-get install -y --no-install-recommends curl tini && rm -rf /var/lib/apt/lists/* \
  && mkdir -p /data/uploads && chown -R node:node /data
WORKDIR /app
COPY --from=build --chown=node:node /app/package.json /app/package-lock.json ./
COPY --from=build --chown=node:node /app/node_modules ./node_modules
COPY --from=build --chown=node:node /app/dist ./dist
USER node
EXPOSE 5001 5002
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD curl -fsS "http://127.0.0.1:${PORT:-5001}/api/health/live" || exit 1
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "dist/src/main.js"]
