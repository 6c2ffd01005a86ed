# syntax=docker/dockerfile:1
# One image, two programs: `mailfleet operator` and `mailfleet relay` (the operator hands
# this same image to the relays it creates). No build step: Node 24 runs the TypeScript
# sources directly (type stripping), so the image holds sources and production deps only.
#
#   docker build -t ghcr.io/mailfleet/mailfleet:0.1.0 .
#   docker run --rm ghcr.io/mailfleet/mailfleet:0.1.0 relay --config /etc/mailfleet/relay.yaml
ARG NODE_IMAGE=node:24-bookworm-slim

# --- production dependencies -------------------------------------------------------------
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# --omit=dev: no test or type-checking tools in the image, and not the npm `node` package
# (a dev dependency that brings Node 24 to machines without it; the base image has it).
# --ignore-scripts: no dependency runs code at install.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm cache clean --force

# --- runtime ------------------------------------------------------------------------------
FROM ${NODE_IMAGE}
ENV NODE_ENV=production
# 65532 is the uid the operator's pod specs run as (runAsUser), for the relay and itself.
RUN groupadd --system --gid 65532 mailfleet \
 && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin mailfleet \
 && mkdir -p /var/lib/mailfleet /etc/mailfleet \
 && chown 65532:65532 /var/lib/mailfleet
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY bin ./bin
COPY cli ./cli
COPY relay ./relay
COPY operator ./operator
USER 65532:65532
EXPOSE 587 465 9464 8080
ENTRYPOINT ["node", "/app/bin/mailfleet.ts"]
CMD ["--help"]
