-- wrk script: like auth.lua, but each connection waits BENCH_DELAY_MS before each
-- request, which paces the total rate (see run.py: paced()).
local creds = os.getenv("BENCH_BASIC")
local pause = tonumber(os.getenv("BENCH_DELAY_MS"))
wrk.headers["Authorization"] = "Basic " .. creds

function delay()
  return pause
end
