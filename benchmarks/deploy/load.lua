-- wrk script of the deploy benchmark: page reads skewed towards popular pages, and edits
-- through the site's own form (GET the form for its CSRF token, POST it, logged in).
-- Run with one connection per thread (-t N -c N): a thread's requests then never overlap,
-- and each is logged with its start and end (CLOCK_MONOTONIC, shared by all threads).
-- Arguments: the data file written by benchmarks/deploy/run.py (paths, weights, each
-- thread's bookmarks and session cookies, the log directory).

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
end

local function urlencode(s)
  return (string.gsub(s, "[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

local data, log, mine, paths, cum
local state, kind, t0, path, cur, token, seq = "read", nil, 0, nil, nil, nil, 0

function init(args)
  data = dofile(args[1])
  math.randomseed(data.seed * 1000 + id)
  log = io.open(data.logdir .. "/log-" .. id .. ".tsv", "w")
  log:setvbuf("line")
  mine = data.writers[id] or {}
  paths, cum = data.paths, data.cum
end

local function pick()
  local r = math.random() * cum[#cum]
  local lo, hi = 1, #cum
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if cum[mid] < r then lo = mid + 1 else hi = mid end
  end
  return paths[lo]
end

function request()
  t0 = now()
  if state == "post" then
    kind = "post"
    seq = seq + 1
    local imp = math.random(1, 5)
    local title = cur.base .. " ~" .. id .. "." .. seq
    local body = "csrfmiddlewaretoken=" .. urlencode(token) .. "&url=" .. urlencode(cur.url)
      .. "&title=" .. urlencode(title) .. "&description=" .. urlencode(cur.desc)
      .. "&importance=" .. imp
    for _, tag in ipairs(cur.tags) do body = body .. "&tags=" .. tag end
    log:write("W\t", id, "\t", seq, "\t", cur.id, "\t", string.format("%.6f", t0), "\t", title, "\t", imp, "\n")
    return wrk.format("POST", "/b/" .. cur.id .. "/edit/",
      { ["Cookie"] = cur.cookie, ["Content-Type"] = "application/x-www-form-urlencoded" }, body)
  end
  if #mine > 0 and math.random() < data.write_share then
    kind = "form"
    cur = mine[math.random(#mine)]
    return wrk.format("GET", "/b/" .. cur.id .. "/edit/", { ["Cookie"] = cur.cookie })
  end
  kind = "read"
  path = pick()
  return wrk.format("GET", path)
end

local function header(headers, name)
  return headers[name] or headers[string.lower(name)] or ""
end

function response(status, headers, body)
  local t1 = now()
  if kind == "form" then
    token = string.match(body, 'name="csrfmiddlewaretoken" value="([^"]+)"')
    state = token and "post" or "read"
    -- The bookmark as the form shows it, checked like a page read (benchmarks/deploy/stale.py).
    local out = { "G", id, string.format("%.6f", t0), string.format("%.6f", t1), status, cur.id,
      header(headers, "X-Bench-Q"), header(headers, "X-Bench-QF"),
      header(headers, "X-Bench-TD"), header(headers, "X-Bench-TF") }
    if status == 200 then
      local url = string.match(body, '<input type="url" name="url" value="([^"]*)"')
      local title = string.match(body, '<input type="text" name="title" value="([^"]*)"')
      local imp = string.match(body, '<input type="number" name="importance" value="(%d+)"')
      if url and title and imp then
        out[#out + 1] = url; out[#out + 1] = title; out[#out + 1] = imp
      end
    end
    log:write(table.concat(out, "\t"), "\n")
    return
  end
  if kind == "post" then
    state = "read"
    log:write("E\t", id, "\t", seq, "\t", string.format("%.6f", t1), "\t", status, "\n")
    return
  end
  local out = { "R", id, string.format("%.6f", t0), string.format("%.6f", t1), status, path,
    header(headers, "X-Bench-Q"), header(headers, "X-Bench-QF"),
    header(headers, "X-Bench-TD"), header(headers, "X-Bench-TF") }
  if status == 200 then
    if string.find(path, "/feed/", 1, true) then
      for title, link in string.gmatch(body, "<item><title>([^<]*)</title><link>([^<]*)</link>") do
        out[#out + 1] = link; out[#out + 1] = title; out[#out + 1] = "-"
      end
    else
      for url, title, imp in string.gmatch(body,
          '<div class="bm">%s*<a href="([^"]*)">([^<]*)</a>%s*<span class="imp" title="importance (%d)"') do
        out[#out + 1] = url; out[#out + 1] = title; out[#out + 1] = imp
      end
    end
  end
  log:write(table.concat(out, "\t"), "\n")
end
