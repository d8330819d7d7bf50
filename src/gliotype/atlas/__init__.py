"""Atlas space for the brain-network method: the MNI152 template, the AAL regions (nodes), white-matter
pathways between them (edges), and ANTs registration of a patient's T1 to the template."""

from gliotype.atlas.aal import Atlas, load_aal
from gliotype.atlas.pathways import Pathways, load_tract_atlas, membership, pathway_map, tube_pathways
from gliotype.atlas.register import (Registration, from_template, points_to_template,
                                     registration_arrays, registration_from_arrays, registration_meta,
                                     to_template)
from gliotype.atlas.template import Template, load_template

__all__ = ["Atlas", "Pathways", "Registration", "Template", "from_template", "load_aal", "load_template",
           "load_tract_atlas", "membership", "pathway_map", "points_to_template",
           "registration_arrays", "registration_from_arrays", "registration_meta", "to_template",
           "tube_pathways"]
