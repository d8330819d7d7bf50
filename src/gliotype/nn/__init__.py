"""Neural-network building blocks."""

from gliotype.nn.graph import fps, knn_graph, radius_graph

__all__ = ["fps", "knn_graph", "radius_graph"]
