# relay-bot: build the TypeScript and better-sqlite3's native module, then run as a non-root user.
#   docker build -t relay-bot .
#   docker run --rm -v relay-data:/data relay-bot id
#   docker run -d -v relay-data:/data -e RELAY_STATE_KEY=... relay-bot   # relay-bot start --config /config/bot.yaml

# Node 22 (LTS): better-sqlite3 12, the line that still installs on Node 20, aborts the process on
# Node 24.19+ and 26 when the garbage collector frees a prepared statement (test/store/sqlite-gc.test.ts;
# `npm run test:node -- 24 test/store/sqlite-gc.test.ts` shows it). Move on with better-sqlite3 13.
FROM node:22-trixie AS build
WORKDIR /app
# better-sqlite3 compiles from source when no prebuilt binary fits.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
# --ignore-scripts: the package's own prepare (npm run build) needs the sources, copied below;
# npm rebuild then runs better-sqlite3's install (a prebuilt binary, or a compile).
RUN npm ci --no-audit --no-fund --ignore-scripts \
 && npm rebuild better-sqlite3
COPY tsconfig.json tsconfig.build.json ormconfig.ts index.ts ./
COPY framework ./framework
COPY cli ./cli
COPY bots ./bots
COPY plugins ./plugins
RUN npm run build \
 && npm prune --omit=dev \
 && chmod +x dist/cli/main.js

# Same Debian release as the build stage, so the compiled better-sqlite3 binary loads.
FROM node:22-trixie-slim
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
