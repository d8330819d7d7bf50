"""Interpretation primitives (paper 000, section 3.3): Grad-CAM on the image learner, GNNExplainer on the
point learner, the maps placed back on the patient's scan and projected onto the surface points, and figures.

Every function here is pure apart from the files it is asked to write; :func:`explain_patient` (the
``gliotype explain`` command) composes them for one patient of a trained run.
"""

from gliotype.explain.backmap import cube_to_original, write_like
from gliotype.explain.figures import points_scatter_png, slice_overlay_png
from gliotype.explain.gnnexplainer import point_importance
from gliotype.explain.gradcam import default_layer, grad_cam, upsample_cam
from gliotype.explain.points import project_to_points, surface_voxels
from gliotype.explain.token_cam import cam_to_image, token_gradcam, views_from_cam
from gliotype.explain.patient import Explanation, explain_patient

__all__ = ["explain_patient", "Explanation", "grad_cam", "upsample_cam", "default_layer", "cube_to_original", "write_like", "surface_voxels",
           "project_to_points", "point_importance", "slice_overlay_png", "points_scatter_png", "token_gradcam", "views_from_cam", "cam_to_image"]
