"""The run history: the run records a state store keeps, read into one shape (records.py) and shown as
a text table (`dpone runs`, table.py) or as one self-contained HTML page with inline SVG charts
(`dpone report --html`, html_page.py and svg_charts.py)."""
