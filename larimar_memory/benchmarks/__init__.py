"""Benchmark commands: print figures and save JSON/PNG under docs/results/. Never assertions."""
