"""Auto-grading for the transformer interpretability course.

The package follows the life of an assignment: ``authoring`` reads instructor
material, ``build`` compiles it into a student release and a grading bundle,
``grade`` runs submissions against hidden tests, and ``gradebook``/``report``
record and show the results.
"""

import sys

__version__ = "0.1.0"

# nbformat validates notebooks with jsonschema, whose optional IRI format checker imports
# rfc3987_syntax, which builds a grammar at import: 1.1 s in every process that reads a
# notebook (the CLI, each grading worker). Notebook schemas use no IRI formats, so the
# checker is left out; jsonschema treats the module as absent.
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
