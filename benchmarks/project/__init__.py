"""The Django project the benchmarks measure, in one variant per process (``BENCH_VARIANT``)."""
