-- wrk script: POSTs one sentence per request, cycling through a file of sentences.
--   wrk ... -s requests.lua http://host:port -- ROUTE SENTENCES_FILE
local sentences, route, i = {}, "/embed", 0

function init(args)
  route = args[1] or route
  for line in io.lines(args[2]) do
    sentences[#sentences + 1] = line:gsub('\\', '\\\\'):gsub('"', '\\"')
  end
end

function request()
  i = i + 1
  local body = '{"inputs": "' .. sentences[(i % #sentences) + 1] .. '"}'
  return wrk.format("POST", route, { ["Content-Type"] = "application/json" }, body)
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    "RESULT requests=%d seconds=%.3f rps=%.2f p50_ms=%.2f p99_ms=%.2f non2xx=%d socket_errors=%d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, errors.status,
    errors.connect + errors.read + errors.write + errors.timeout))
end
