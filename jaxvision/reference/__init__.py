"""NumPy oracles: plain float64 ports of the textbook algorithms (tests and benchmarks)."""
