"""The tools around the rqvalue pipeline: the `rqvalue` command line (run, compile, inspect, report,
schedule, bench) and what it prints and writes."""
