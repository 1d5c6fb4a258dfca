-- wrk load for the live intake (scripts/bench-live.sh): POST /v1/events with a JSON array of
-- BATCH distinct, valid events per request (ids unique per run and thread, so nothing is a
-- duplicate), in the mix of a bookstore's traffic: 60 % page views, 25 % book views, 10 % cart
-- adds, 5 % orders. Event times cycle through 2025-10-01 12:00–12:59 UTC (hour 11 is left to
-- the latency probe).
local batch = tonumber(os.getenv("BATCH") or "100")
local run = os.getenv("RUN_ID") or tostring(os.time())
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

local prefix
local counter = 0

function init(args)
  prefix = "bench-" .. run .. "-" .. tostring(tid) .. "-"
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

local function event(n)
  local id = prefix .. n
  local user = "usr_" .. (n % 20000)
  local sec = n % 3600
  local ts = string.format("2025-10-01T12:%02d:%02dZ", math.floor(sec / 60), sec % 60)
  local book = "bk_" .. (n % 997 + 1)
  local head = '{"event_id":"' .. id .. '","event_timestamp":"' .. ts .. '","user_id":"' .. user ..
    '","device":"mobile","traffic_source":"organic",'
  local k = n % 20
  if k < 12 then
    return head .. '"event_type":"page_view","page":"home"}'
  elseif k < 17 then
    return head .. '"event_type":"product_view","book_id":"' .. book .. '","via":"browse"}'
  elseif k < 19 then
    return head .. '"event_type":"add_to_cart","book_id":"' .. book .. '","quantity":1,"unit_price":9.99}'
  end
  return head .. '"event_type":"order_placed","order_id":"o-' .. id .. '","items":[{"book_id":"' ..
    book .. '","quantity":2,"unit_price":9.99}],"total_price":19.98}'
end

function request()
  local parts = {}
  for i = 1, batch do
    counter = counter + 1
    parts[i] = event(counter)
  end
  return wrk.format(nil, nil, nil, "[" .. table.concat(parts, ",") .. "]")
end
