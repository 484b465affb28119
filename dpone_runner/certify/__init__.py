"""`dpone certify`: each connector's capability matrix with the evidence behind every cell.

declared.py reads what the connectors say they can do, evidence.py reads what the tests and
benchmarks showed and judges each cell, matrix.py puts the two together, render.py prints them.
"""
