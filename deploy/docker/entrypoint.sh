#!/bin/sh
# The image's one entrypoint: the first argument names the part, the rest go to its command.
# Every part reads its configuration from AGENTSTREAM_<PART>_* environment variables.
#
#   api                  the query API (port 8000)
#   gateway              the ingest gateway (port 8001)
#   sink                 Kafka -> ClickHouse (metrics/health port 9108)
#   processors [APP]     the stream-processor worker (web/metrics port 6066); APP defaults to
#                        `all`, the one chain worker: redaction and every detector in one pass
#   topics               one-shot: create the catalog's topics (AGENTSTREAM_BOOTSTRAP_SERVERS)
#   schemas              one-shot: register the schemas (AGENTSTREAM_SCHEMA_REGISTRY_URL)
#   migrate              one-shot: apply the ClickHouse migrations (AGENTSTREAM_SINK_*)
#   init                 one-shot: topics, then schemas (when a registry is set), then migrate
#   anything else        passed to the `agentstream` command as is (e.g. `--help`)
set -eu

part="${1:-help}"
[ "$#" -gt 0 ] && shift

case "$part" in
  api)       exec agentstream api run "$@" ;;
  gateway)   exec agentstream gateway run "$@" ;;
  sink)      exec agentstream sink run "$@" ;;
  processors)
    app="all"
    if [ "$#" -gt 0 ]; then app="$1"; shift; fi
    exec agentstream processors run --app "$app" "$@" ;;
  topics)    exec agentstream topics create "$@" ;;
  schemas)   exec agentstream schemas register "$@" ;;
  migrate)   exec agentstream sink migrate "$@" ;;
  init)
    agentstream topics create
    if [ -n "${AGENTSTREAM_SCHEMA_REGISTRY_URL:-}" ]; then
      agentstream schemas register
    else
      echo "init: AGENTSTREAM_SCHEMA_REGISTRY_URL unset, schema ids stay embedded" >&2
    fi
    exec agentstream sink migrate "$@" ;;
  help)      exec agentstream --help ;;
  *)         exec agentstream "$part" "$@" ;;
esac
