-- GET /v1/kv/<prefix>-<k> over the BENCH_KEYS preloaded keys (k = 0..n-1),
-- each thread starting at a different offset. Requests are built once;
-- request() only hands out the next prebuilt string.
dofile((os.getenv("BENCH_WRK_DIR") or ".") .. "/common.lua")

local reqs, n, i

local function build()
  local nkeys = tonumber(os.getenv("BENCH_KEYS") or "1000")
  local prefix = os.getenv("BENCH_KEY_PREFIX") or "bench"
  reqs = {}
  for k = 0, nkeys - 1 do
    reqs[#reqs + 1] = wrk.format("GET", "/v1/kv/" .. prefix .. "-" .. k)
  end
  n = #reqs
  i = ((tid or 0) * 7919) % n
end

function init(args)
  build()
end

function request()
  if not reqs then build() end
  i = i + 1
  if i > n then i = 1 end
  return reqs[i]
end
