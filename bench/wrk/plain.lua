-- Static request (the URL given to wrk, GET): no per-request Lua call.
dofile((os.getenv("BENCH_WRK_DIR") or ".") .. "/common.lua")
