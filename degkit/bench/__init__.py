"""Standardized DePLSR leaderboards: configs, the run, tables and the report."""
