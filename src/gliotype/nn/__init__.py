"""Neural-network building blocks."""

from gliotype.nn.fps import fps
from gliotype.nn.graph import knn_graph, radius_graph

__all__ = ["fps", "knn_graph", "radius_graph"]
