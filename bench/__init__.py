"""Benchmarks (`make bench`): each reports medians and a ratio against a baseline run in the same process."""
