"""Console dataset I/O: image preprocessing, dataset CSV reading, output CSV writing."""
