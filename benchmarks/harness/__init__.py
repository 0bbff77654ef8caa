"""What every benchmark runner under ``benchmarks/`` shares: processes, wrk, the machine.

- ``processes``: start servers in their own process groups on free loopback ports, wait until
  they answer, and always stop exactly what was started.
- ``wrk``: run wrk bounded in time and read its throughput, percentiles and errors.
- ``machine``: the machine and software versions a results section must name.

The runners are scripts (``.venv/bin/python benchmarks/hop/run.py``); each puts the repository
root on ``sys.path`` so that ``benchmarks.harness`` imports without installing anything.
"""
