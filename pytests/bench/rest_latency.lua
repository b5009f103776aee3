-- wrk script of the REST benchmark (pytests/bench/rest_bench.py): at the end
-- of a run, one machine-readable line with the counts and the exact latency
-- percentiles (wrk's own --latency table rounds and has no p50/p99 pair).
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK-RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "max_us": %d, '
      .. '"connect_errors": %d, "read_errors": %d, "write_errors": %d, "non_2xx": %d, "timeouts": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
