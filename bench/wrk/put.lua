-- Durable PUT /v1/kv/<prefix>-<tid>-<k> with a BENCH_VALUE_SIZE-byte body,
-- rotating over BENCH_KEYS keys per thread: the first pass creates (201),
-- later passes replace (200). The prefix is unique per run, so every run
-- starts with creates.
dofile((os.getenv("BENCH_WRK_DIR") or ".") .. "/common.lua")

local reqs, n, i

local function build()
  local nkeys = tonumber(os.getenv("BENCH_KEYS") or "1000")
  local size = tonumber(os.getenv("BENCH_VALUE_SIZE") or "1024")
  local prefix = os.getenv("BENCH_KEY_PREFIX") or "put"
  local body = string.rep("p", size)
  reqs = {}
  for k = 0, nkeys - 1 do
    reqs[#reqs + 1] = wrk.format("PUT", "/v1/kv/" .. prefix .. "-" .. (tid or 0) .. "-" .. k,
      { ["Content-Type"] = "application/octet-stream" }, body)
  end
  n = #reqs
  i = 0
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
