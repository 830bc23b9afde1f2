-- wrk script: POST registry notification envelopes, one event each, every one with a
-- fresh event id, spread over BENCH_REPOSITORIES images (as the registry sends them).
-- Environment: BENCH_TEMPLATE (envelope file with @@ID@@ and @@REPO@@ placeholders),
-- BENCH_SECRET (the notification secret), BENCH_RUN (unique per run), BENCH_PREFIX
-- (image path prefix), BENCH_REPOSITORIES.
local file = assert(io.open(os.getenv("BENCH_TEMPLATE"), "rb"))
local template = file:read("*a")
file:close()
local run = os.getenv("BENCH_RUN")
local prefix = os.getenv("BENCH_PREFIX")
local repositories = tonumber(os.getenv("BENCH_REPOSITORIES"))

wrk.method = "POST"
wrk.headers["Authorization"] = os.getenv("BENCH_SECRET")
wrk.headers["Content-Type"] = "application/vnd.docker.distribution.events.v1+json"
wrk.headers["User-Agent"] = "Go-http-client/1.1"

local threads = 0
function setup(thread)
   threads = threads + 1
   thread:set("thread_id", threads)
end

local counter = 0
function request()
   counter = counter + 1
   local id = run .. "-" .. thread_id .. "-" .. counter
   local repository = prefix .. (counter % repositories)
   local body = template:gsub("@@ID@@", id):gsub("@@REPO@@", repository)
   return wrk.format(nil, nil, nil, body)
end
