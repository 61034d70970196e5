-- absolute.lua - wrk script for ferry's real-clients suite: every request wrk sends to the
-- proxy carries an absolute-form target (GET http://origin/path HTTP/1.1), as a client
-- configured with a proxy sends it. FERRY_WRK_TARGET is that URL.
--   wrk -s absolute.lua http://127.0.0.1:FERRYPORT/
-- done() prints one line the suite parses:
--   wrk-result requests=N connect=N read=N write=N status=N timeout=N
local target = os.getenv("FERRY_WRK_TARGET")
local host = target:match("^http://([^/]+)")
wrk.headers["Host"] = host

request = function()
	return wrk.format("GET", target)
end

done = function(summary, latency, requests)
	local e = summary.errors
	io.write(string.format("wrk-result requests=%d connect=%d read=%d write=%d status=%d timeout=%d\n",
		summary.requests, e.connect, e.read, e.write, e.status, e.timeout))
end
