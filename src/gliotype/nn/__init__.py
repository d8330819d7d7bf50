"""Neural-network building blocks."""

from gliotype.nn.fps import fps
from gliotype.nn.graph import knn_graph, radius_graph
from gliotype.nn.vit import ViTConfig, VisionTransformer

__all__ = ["fps", "knn_graph", "radius_graph", "ViTConfig", "VisionTransformer"]
