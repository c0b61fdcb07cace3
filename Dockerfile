# The svc image: `npm install` (builds dist/ and the oclif manifest) first, then `docker build -t svc .`
# Runs the agent by default: docker run -v /var/run/docker.sock:/var/run/docker.sock svc -b zk://zk1:2181
# BASE: Node 24 (LTS until 2028-04); any image with Node 22, 24 or 26 and npm works (the tests build on an
# imported one: nothing is pulled there).
ARG BASE=node:24-slim

FROM ${BASE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
COPY node_modules ./node_modules
# the dependencies come from the checkout's node_modules, pruned offline: the build needs no registry
RUN npm prune --omit=dev --ignore-scripts --offline --no-audit --no-fund
COPY bin/run.js ./bin/run.js
COPY oclif.manifest.json ./
COPY dist ./dist

FROM ${BASE}
ENV NODE_ENV=production SVC_HOME=/var/lib/svc
COPY --from=build /app /opt/svc
LABEL org.opencontainers.image.title="svc" org.opencontainers.image.description="svc: service discovery agent, gateway and CLI"
ENTRYPOINT ["node", "/opt/svc/bin/run.js"]
CMD ["agent"]
