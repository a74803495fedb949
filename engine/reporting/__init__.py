"""Reporting and charts: pure chart functions (rows in, DataFrame or Plotly figure out)
and the HTML and Markdown reports.

May import every layer below it (all but ``cli``).
"""
