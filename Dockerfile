# The traffic manager's image: `kubetun traffic-manager` on Node 20; the same image runs the injected traffic agent
# (`traffic-agent`) and its init container (`agent-init`, which needs nft).
# The manager never loads the native TUN addon (only the root daemon does, lazily), so no stage compiles it and
# the final image holds no build tools: just Node, the compiled JavaScript and the production dependencies.

FROM node:20-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: npm would otherwise run node-gyp for binding.gyp (the TUN addon).
RUN npm ci --ignore-scripts
COPY tsconfig.json ./
COPY src ./src
RUN npx tsc -p tsconfig.json

FROM node:20-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force

FROM node:20-slim
RUN apt-get update && apt-get install -y --no-install-recommends nftables && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production
WORKDIR /app
# version.ts reads kubetun's version from /app/package.json (two levels above dist/src/).
COPY package.json ./
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /src/dist/src ./dist/src
# The uid the manifests run it as (runAsNonRoot, a read-only root filesystem): it writes nothing.
USER 65532:65532
# 8081, the tunnel, listens on the pod's loopback only (port-forwards reach it); 8082 serves the health probes and
# 8443 the TLS listener of `kubetun install --tls-secret`; 8083 is where agents arrive and 8444 the webhook.
EXPOSE 8082 8083 8443 8444
ENTRYPOINT ["node", "--", "/app/dist/src/cli/main.js"]
CMD ["traffic-manager"]
