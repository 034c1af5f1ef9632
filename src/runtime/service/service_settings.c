/* service_settings: the runtime's settings table, the one place for each
 * setting's default, bounds, help and the struct field it fills (parsing,
 * validation, `hale config`, config/default.toml and the README table all
 * come from it). */
#include "service.h"

#include <stddef.h>
#include <string.h>

#define M(member) HALE_FIELD(hale_service_opts, main.member)
#define A(member) HALE_FIELD(hale_service_opts, admin.member)
#define D(n, def, lo, hi, field, help) {n, HALE_SETTING_DURATION, def, lo, hi, NULL, NULL, 0, help, field}
#define I(n, def, lo, hi, alias, field, help) \
    {n, HALE_SETTING_INT, def, lo, hi, NULL, alias, 0, help, field}

const hale_setting hale_runtime_settings[] = {
    {"server.host", HALE_SETTING_STRING, "0.0.0.0", 0, 0, NULL, "HOST", 0,
     "Address the main listener binds (IPv4 or IPv6 literal).", M(host)},
    I("server.port", "8080", 1, 65535, "PORT", M(port), "Port of the main listener (API and probes)."),
    I("server.workers", "0", 0, 256, NULL, M(workers), "Worker threads; 0 means one per CPU."),
    I("server.max_connections", "4096", 1, 1000000, NULL, M(max_connections),
      "Open connections on the main listener; more are refused."),
    I("server.max_connections_per_ip", "1024", 0, 1000000, NULL, M(max_connections_per_ip),
      "Open connections per client address; 0 means no per-address limit."),
    I("server.max_in_flight", "1024", 0, 1000000, NULL, M(max_in_flight),
      "Requests in progress before new ones are shed with 503; 0 disables shedding."),
    I("server.max_header_bytes", "8192", 1024, 1048576, NULL, M(max_header_bytes),
      "Request line plus headers; larger requests get 431."),
    I("server.max_headers", "100", 1, 10000, NULL, M(max_headers), "Request header lines; more gets 431."),
    I("server.max_uri_bytes", "4096", 256, 65536, NULL, M(max_uri_bytes),
      "Request target length; longer gets 414."),
    I("server.max_body_bytes", "1048576", 1, 1073741824, NULL, M(max_body_bytes),
      "Request body; larger gets 413 (from Content-Length before reading, or as a chunked body grows)."),
    D("server.header_timeout", "10s", 100, 3600000, M(header_timeout_ms),
      "A request's line and headers must arrive completely within this time (else 408)."),
    D("server.idle_timeout", "15s", 1000, 3600000, M(idle_timeout_ms),
      "A keep-alive connection with no request for this long is closed."),
    D("server.body_timeout", "15s", 100, 3600000, M(body_timeout_ms),
      "A request body must arrive completely within this time (else 408)."),
    {"metrics.enabled", HALE_SETTING_BOOL, "true", 0, 0, NULL, NULL, 0,
     "Run the admin listener (/metrics and the health endpoints).", HALE_NO_FIELD},
    {"metrics.host", HALE_SETTING_STRING, "0.0.0.0", 0, 0, NULL, NULL, 0,
     "Address the admin listener binds.", A(host)},
    I("metrics.port", "9090", 1, 65535, NULL, A(port), "Port of the admin listener."),
    I("metrics.workers", "1", 1, 16, NULL, A(workers),
      "Worker threads of the admin listener (probes and scrapes only)."),
    I("metrics.max_connections", "128", 1, 100000, NULL, A(max_connections),
      "Open connections on the admin listener: its own cap, so floods of the main one never reach it."),
    D("metrics.idle_timeout", "10s", 1000, 3600000, A(idle_timeout_ms),
      "An admin keep-alive connection with no request for this long is closed."),
    I("metrics.max_body_bytes", "1024", 1, 1048576, NULL, A(max_body_bytes),
      "Request body on the admin listener; its other request limits are the server.* ones."),
    /* not reloadable: the level is set once at start (SIGHUP is ignored) */
    {"log.level", HALE_SETTING_STRING, "info", 0, 0, NULL, "LOG_LEVEL", 0,
     "Level (error, warn, info, debug, trace) with per-target overrides: info,store=debug.", HALE_NO_FIELD},
    {"log.format", HALE_SETTING_ENUM, "text", 0, 0, "text|json", "LOG_FORMAT", 0,
     "text for people, json for one JSON object per line.", HALE_NO_FIELD},
    {"log.access", HALE_SETTING_BOOL, "true", 0, 0, NULL, NULL, 0,
     "One access-log line per request.", HALE_NO_FIELD},
    D("health.liveness_stall", "10s", 100, 600000, HALE_NO_FIELD,
      "A worker inside one request longer than this makes liveness fail."),
    {"auth.api_keys", HALE_SETTING_STRING, "", 0, 0, NULL, "API_KEY", HALE_SETTING_SECRET,
     "API keys, one per line, for routes that require one (/v1/); from the secret file api-key.",
     HALE_NO_FIELD},
    {"auth.allow_anonymous", HALE_SETTING_BOOL, "false", 0, 0, NULL, NULL, 0,
     "Allow starting without any API key when RUN_ENV=production (the API is then open).", HALE_NO_FIELD},
    D("auth.reload_interval", "1s", 100, 2000, HALE_NO_FIELD,
      "How often the api-key secret file is checked for a rotation."),
    D("shutdown.drain_delay", "5s", 0, 600000, HALE_NO_FIELD,
      "After SIGTERM, keep serving (readiness 503) this long so load balancers move away."),
    {"shutdown.close_idle", HALE_SETTING_ENUM, "drain_start", 0, 0, "drain_start|drain_end", NULL, 0,
     "When idle keep-alive connections are closed: as the drain starts, or when drain_delay ends "
     "(for load balancers that do not retry a request on a reused connection).",
     M(close_idle_at_quiesce)},
    D("shutdown.timeout", "20s", 0, 600000, HALE_NO_FIELD,
      "Then wait at most this long for requests in progress; keep it below the grace period."),
};
const size_t hale_runtime_nsettings = sizeof hale_runtime_settings / sizeof hale_runtime_settings[0];

void hale_service_opts_get(const hale_cfg *cfg, hale_service_opts *o) {
    memset(o, 0, sizeof *o);
    hale_cfg_bind(cfg, hale_runtime_settings, hale_runtime_nsettings, o);
    /* the admin listener shares the main one's request limits, except
     * those bound to admin fields above: bind again over the copy */
    o->admin = o->main;
    hale_cfg_bind(cfg, hale_runtime_settings, hale_runtime_nsettings, o);
    o->main.name = "main";
    o->admin.name = "admin";
}
