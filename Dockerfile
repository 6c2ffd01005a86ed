# syntax=docker/dockerfile:1
# One image, two programs: `mailfleet operator` and `mailfleet relay` (the operator hands
# this same image to the relays it creates). It runs the compiled build (dist/, as the npm
# package does): no type stripping at run time, and only production dependencies.
#
#   docker build -t registry.example.com/mailfleet:0.1.0 .        (see docs/install.md)
#   docker run --rm registry.example.com/mailfleet:0.1.0 relay --config /etc/mailfleet/relay.yaml
ARG NODE_IMAGE=node:24-bookworm-slim

# --- build: TypeScript sources -> dist/ (npm run build) -------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# All dependencies (tsc, @types), but no install scripts: the npm `node` package would fetch
# a second Node; the base image has one.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY bin ./bin
COPY cli ./cli
COPY relay ./relay
COPY operator ./operator
RUN npm run build

# --- production dependencies -------------------------------------------------------------
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# --omit=dev: no test or type-checking tools in the image, and not the npm `node` package.
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
COPY --from=build /app/dist ./dist
USER 65532:65532
EXPOSE 587 465 9464 8080
ENTRYPOINT ["node", "/app/dist/bin/mailfleet.js"]
CMD ["--help"]
