"""gliotype: predict the molecular type of a glioma (IDH, 1p/19q, WHO grade) from MRI, perfusion,
tumour geometry, brain networks, histopathology and RNA-seq.

The library is silent: it logs through ``logging.getLogger(__name__)`` and attaches no handlers.
"""

import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())
