/* service_settings: the runtime's settings table (one place: parsing,
 * validation, `hale config` and the README table all come from it). */
#include "service.h"

#include <string.h>

#define D(n, def, lo, hi, help) {n, HALE_SETTING_DURATION, def, lo, hi, NULL, NULL, 0, help}
#define I(n, def, lo, hi, alias, help) {n, HALE_SETTING_INT, def, lo, hi, NULL, alias, 0, help}

const hale_setting hale_runtime_settings[] = {
    {"server.host", HALE_SETTING_STRING, "0.0.0.0", 0, 0, NULL, "HOST", 0,
     "Address the main listener binds (IPv4 or IPv6 literal)."},
    I("server.port", "8080", 1, 65535, "PORT", "Port of the main listener (API and probes)."),
    I("server.workers", "0", 0, 256, NULL, "Worker threads; 0 means one per CPU."),
    I("server.max_connections", "4096", 1, 1000000, NULL,
      "Open connections on the main listener; more are refused."),
    I("server.max_connections_per_ip", "1024", 0, 1000000, NULL,
      "Open connections per client address; 0 means no per-address limit."),
    I("server.max_in_flight", "1024", 0, 1000000, NULL,
      "Requests in progress before new ones are shed with 503; 0 disables shedding."),
    I("server.max_header_bytes", "8192", 1024, 1048576, NULL,
      "Request line plus headers; larger requests get 431."),
    I("server.max_headers", "100", 1, 10000, NULL, "Request header lines; more gets 431."),
    I("server.max_uri_bytes", "4096", 256, 65536, NULL, "Request target length; longer gets 414."),
    I("server.max_body_bytes", "1048576", 1, 1073741824, NULL,
      "Request body; larger gets 413 (from Content-Length before reading, or as a chunked body grows)."),
    D("server.header_timeout", "10s", 100, 3600000,
      "A request's line and headers must arrive completely within this time (else 408)."),
    D("server.idle_timeout", "15s", 1000, 3600000,
      "A keep-alive connection with no request for this long is closed."),
    D("server.body_timeout", "15s", 100, 3600000,
      "A request body must arrive completely within this time (else 408)."),
    {"metrics.enabled", HALE_SETTING_BOOL, "true", 0, 0, NULL, NULL, 0,
     "Run the admin listener (/metrics and the health endpoints)."},
    {"metrics.host", HALE_SETTING_STRING, "0.0.0.0", 0, 0, NULL, NULL, 0,
     "Address the admin listener binds."},
    I("metrics.port", "9090", 1, 65535, NULL, "Port of the admin listener."),
    /* not reloadable: the level is set once at start (SIGHUP is ignored) */
    {"log.level", HALE_SETTING_STRING, "info", 0, 0, NULL, "LOG_LEVEL", 0,
     "Level (error, warn, info, debug, trace) with per-target overrides: info,store=debug."},
    {"log.format", HALE_SETTING_ENUM, "text", 0, 0, "text|json", "LOG_FORMAT", 0,
     "text for people, json for one JSON object per line."},
    {"log.access", HALE_SETTING_BOOL, "true", 0, 0, NULL, NULL, 0,
     "One access-log line per request."},
    D("health.liveness_stall", "10s", 100, 600000,
      "A worker inside one request longer than this makes liveness fail."),
    {"auth.api_keys", HALE_SETTING_STRING, "", 0, 0, NULL, "API_KEY", HALE_SETTING_SECRET,
     "API keys, one per line, for routes that require one (/v1/); from the secret file api-key."},
    {"auth.allow_anonymous", HALE_SETTING_BOOL, "false", 0, 0, NULL, NULL, 0,
     "Allow starting without any API key when RUN_ENV=production (the API is then open)."},
    D("auth.reload_interval", "1s", 100, 2000,
      "How often the api-key secret file is checked for a rotation."),
    D("shutdown.drain_delay", "5s", 0, 600000,
      "After SIGTERM, keep serving (readiness 503) this long so load balancers move away."),
    {"shutdown.close_idle", HALE_SETTING_ENUM, "drain_start", 0, 0, "drain_start|drain_end", NULL, 0,
     "When idle keep-alive connections are closed: as the drain starts, or when drain_delay ends "
     "(for load balancers that do not retry a request on a reused connection)."},
    D("shutdown.timeout", "20s", 0, 600000,
      "Then wait at most this long for requests in progress; keep it below the grace period."),
};
const size_t hale_runtime_nsettings = sizeof hale_runtime_settings / sizeof hale_runtime_settings[0];

void hale_service_http_opts(const hale_cfg *cfg, hale_http_opts *o) {
    hale_http_opts_default(o);
    o->name = "main";
    o->host = hale_cfg_str(cfg, "server.host");
    o->port = (unsigned)hale_cfg_int(cfg, "server.port");
    o->workers = (unsigned)hale_cfg_int(cfg, "server.workers");
    o->max_connections = (unsigned)hale_cfg_int(cfg, "server.max_connections");
    o->max_connections_per_ip = (unsigned)hale_cfg_int(cfg, "server.max_connections_per_ip");
    o->max_in_flight = (unsigned)hale_cfg_int(cfg, "server.max_in_flight");
    o->max_header_bytes = (size_t)hale_cfg_int(cfg, "server.max_header_bytes");
    o->max_uri_bytes = (size_t)hale_cfg_int(cfg, "server.max_uri_bytes");
    o->max_body_bytes = (size_t)hale_cfg_int(cfg, "server.max_body_bytes");
    o->max_headers = (unsigned)hale_cfg_int(cfg, "server.max_headers");
    o->close_idle_at_quiesce = strcmp(hale_cfg_str(cfg, "shutdown.close_idle"), "drain_end") == 0;
    o->header_timeout_ms = (unsigned)hale_cfg_ms(cfg, "server.header_timeout");
    o->idle_timeout_s = (unsigned)((hale_cfg_ms(cfg, "server.idle_timeout") + 999) / 1000);
    o->body_timeout_ms = (unsigned)hale_cfg_ms(cfg, "server.body_timeout");
}
