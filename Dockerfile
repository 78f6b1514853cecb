# relay-bot: build the TypeScript, then run it as a non-root user.
#   docker build -t relay-bot .
#   docker run --rm -v relay-data:/data relay-bot id
#   docker run -d -v relay-data:/data -e RELAY_STATE_KEY=... relay-bot   # relay-bot start --config /config/bot.yaml

# Node 24 (LTS). The embedded SQLite there is better-sqlite3 13 (the optional dependency
# better-sqlite3-13, framework/store/sqlite-driver.ts), which ships prebuilt Node-API binaries in its
# npm package: nothing to compile, so no compiler in the build stage. better-sqlite3 12, kept for
# Node 20, is installed but never loaded on 24 (it aborts there, test/store/sqlite-gc.test.ts), so
# its native build is skipped.
FROM node:24-trixie-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: the package's own prepare (npm run build) needs the sources, copied below, and
# better-sqlite3 12's install would compile a module nothing loads on this line.
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json tsconfig.build.json ormconfig.ts index.ts ./
COPY framework ./framework
COPY cli ./cli
COPY bots ./bots
COPY plugins ./plugins
RUN npm run build \
 && npm prune --omit=dev \
 && chmod +x dist/cli/main.js

# Same Debian release as the build stage, so what npm installed there (better-sqlite3 13's prebuilt
# binary needs glibc) runs here.
FROM node:24-trixie-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY deploy/bot.yaml /config/bot.yaml
RUN ln -s /app/dist/cli/main.js /usr/local/bin/relay-bot \
 && mkdir -p /data \
 && chown node:node /data
USER node
# ./data defaults and the SQLite file live in the volume.
WORKDIR /data
VOLUME ["/data"]
ENTRYPOINT ["relay-bot"]
CMD ["start", "--config", "/config/bot.yaml"]
