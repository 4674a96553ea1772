"""Workload modules: each defines ``WORKLOADS`` (discovered automatically)."""
