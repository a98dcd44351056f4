# syntax=docker/dockerfile:1
# Node 22: the LTS line (Node 20 reached its end of life in April 2026).
# Build stage: compile TypeScript, and install the runtime's dependencies where the compilers
# are (better-sqlite3 builds a native addon).
FROM node:24-bookworm-slim AS build
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build
# A clean production install of its own, rather than the dev install pruned: exactly what the
# lock file says for production, nothing left over from the build.
WORKDIR /prod
RUN cp /app/package.json /app/package-lock.json ./ && npm ci --omit=dev --no-audit --no-fund

# Runtime stage: only what runs, as a non-root user.
FROM node:24-bookworm-slim
ENV NODE_ENV=production PORT=3000 HOST=0.0.0.0 DATA_DIR=/data
# The heap limit npm start sets, as an environment variable so that `docker run -e` or a
# Kubernetes Deployment can raise it (a flag in CMD would win over NODE_OPTIONS). A smaller old
# space makes V8 collect sooner; the live heap is ~26 MB under load.
ENV NODE_OPTIONS="--max-old-space-size=192 --max-semi-space-size=8"
WORKDIR /app
COPY --from=build /prod/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/health/ready').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
CMD ["node", "dist/server.js"]
