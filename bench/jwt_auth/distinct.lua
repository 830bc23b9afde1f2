-- wrk script: walk a pre-generated list of distinct realm requests (compare.py).
-- Environment:
--   BENCH_REQUESTS  file, one request a line: "<Authorization header>\t<path and query>"
--   BENCH_THREADS   wrk's -t: thread i sends lines i, i+T, i+2T... (1-based i), so the
--                   threads never send the same line and each one cycles through its
--                   share; a line comes back after the whole list has been sent
--   BENCH_START     where in its share each thread starts (any integer)
--   BENCH_DELAY_MS  if > 0, each connection pauses that long before each request
local file_name = os.getenv("BENCH_REQUESTS")
local step = tonumber(os.getenv("BENCH_THREADS") or "1")
local start = tonumber(os.getenv("BENCH_START") or "0")
local pause = tonumber(os.getenv("BENCH_DELAY_MS") or "0")

local threads = 0
function setup(thread)
   threads = threads + 1
   thread:set("thread_index", threads)
end

local requests = {}
local count = 0
local position = 0

function init(args)
   local index = 0
   for line in io.lines(file_name) do
      index = index + 1
      if (index - thread_index) % step == 0 then
         local tab = string.find(line, "\t", 1, true)
         local headers = { ["Authorization"] = string.sub(line, 1, tab - 1) }
         count = count + 1
         requests[count] = wrk.format("GET", string.sub(line, tab + 1), headers)
      end
   end
   position = start % count
end

function request()
   position = position % count + 1
   return requests[position]
end

if pause > 0 then
   function delay()
      return pause
   end
end
