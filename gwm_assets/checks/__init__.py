"""Validation: expectation suites (data files next to what they guard), run with Great Expectations."""
