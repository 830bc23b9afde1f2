-- wrk script: GET /jwt/auth with Basic credentials from the environment.
local creds = os.getenv("BENCH_BASIC")
wrk.headers["Authorization"] = "Basic " .. creds
