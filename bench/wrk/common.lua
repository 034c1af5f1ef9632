-- Shared by every wrk script of the bench (loaded with dofile from the
-- directory given in BENCH_WRK_DIR).
--  * setup() gives each wrk thread an id (global `tid` in its Lua state), so
--    that threads walk different keys.
--  * done() prints one machine-readable line that bench/run.sh picks up:
--      BENCHJSON {"requests":..,"duration_us":..,"p50_us":..,...}
--    Latencies are wrk's (microseconds, per request, measured by wrk).

local next_tid = 0

function setup(thread)
  thread:set("tid", next_tid)
  next_tid = next_tid + 1
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d,' ..
    '"lat_mean_us":%.1f,"lat_stdev_us":%.1f,"lat_max_us":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9)))
end
