# Parley as one self-contained binary on a small base image.
FROM oven/bun:1.4.5 AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN bun install --ignore-scripts
COPY tsconfig.json bunfig.toml ./
COPY src ./src
# Not --minify: without its whitespace Elysia's handler analysis misreads the auth hook and prints a warning,
# five lines that are not JSON, into the log on stdout.
RUN bun build --compile --minify-syntax --minify-identifiers --sourcemap src/index.ts --outfile /out/parley
# The data directory, made here (distroless has no shell): a volume Docker creates where the image has no
# directory is root's, and the server, running as nonroot, could not write its database there.
RUN mkdir -p /out/data

FROM gcr.io/distroless/cc-debian12:nonroot
WORKDIR /app
COPY --from=build /out/parley /app/parley
COPY --from=build --chown=nonroot:nonroot /out/data /app/data
ENV NODE_ENV=production PORT=8000 HOST=0.0.0.0 DATA_DIR=/app/data
EXPOSE 8000
VOLUME ["/app/data"]
# distroless has no curl: the binary asks its own server's /ready (`parley health`: exit 0 ready, 1 not).
HEALTHCHECK --interval=10s --timeout=5s --start-period=15s --retries=3 CMD ["/app/parley", "health"]
USER nonroot
ENTRYPOINT ["/app/parley"]
