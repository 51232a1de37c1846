"""Course material that several sections share (their helpers modules re-export it for the notebooks)."""
