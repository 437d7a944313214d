"""The networks (refiner, patch and projection discriminators) and how their forward pass runs
fast on CPU (micro-batching, Winograd 3x3)."""
