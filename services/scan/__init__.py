"""`owc scan`: the detector and the counting rules over a recording (docs/scan.md)."""
