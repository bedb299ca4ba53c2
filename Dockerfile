# scorestream on the official Deno image, pinned to the Deno that CI tests with.
#   docker build -t scorestream .
#   docker run -p 8000:8000 -e DATABASE_URL=postgres://... scorestream
# Without DATABASE_URL the embedded Postgres keeps its files in the /app/data volume.
FROM denoland/deno:2.9.6

# PORT and HOST: where the API listens (0.0.0.0: reachable from outside the container).
# DATA_DIR: the embedded database's files; relative to /app, it is the one directory the
# service may write (--allow-write=./data). SCORES_URL (the feed; unset: the built-in
# demo feed), DATABASE_URL (unset: embedded Postgres) and WRITERS have no default here.
# MALLOC_ARENA_MAX: as the start task sets it (see the README's performance section).
ENV PORT=8000 \
    HOST=0.0.0.0 \
    MALLOC_ARENA_MAX=2 \
    DATA_DIR=./data \
    DENO_NO_UPDATE_CHECK=1 \
    DENO_NO_PROMPT=1

WORKDIR /app
RUN mkdir -p /app/data && chown deno:deno /app/data

# The image's unprivileged user owns the dependency cache (DENO_DIR=/deno-dir) and the
# data directory, and nothing else: the source stays read-only to it.
USER deno

# Dependencies first, from the lockfile alone, so that this layer is rebuilt only when
# deno.json or deno.lock change.
COPY deno.json deno.lock ./
RUN deno install --frozen

COPY . .
# Everything main.ts imports is in the cache before start: starting downloads nothing.
RUN deno install --frozen --entrypoint main.ts

VOLUME /app/data
EXPOSE 8000

# The image has no curl: a few lines of Deno, with network access to loopback only.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD echo 'const r = await fetch(`http://127.0.0.1:${Deno.env.get("PORT") ?? 8000}/healthz`); Deno.exit(r.ok ? 0 : 1);' \
    | deno run --no-config --allow-net=127.0.0.1 --allow-env=PORT -

# The flags of the start task in deno.json: its V8 flags and its permissions, no more.
CMD ["deno", "run", "--v8-flags=--max-semi-space-size=4,--max-old-space-size=96", "--allow-net", "--allow-env", "--allow-read", "--allow-write=./data", "--allow-sys", "main.ts"]
