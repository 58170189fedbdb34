"""Personalized ranking: PopRank, BPR-MF, VBPR and DVBPR behind one interface (see base.py)."""

from modiste.rec.bpr import BPRMF
from modiste.rec.dvbpr import DVBPR
from modiste.rec.pop import PopRank
from modiste.rec.vbpr import VBPR

MODELS = {cls.name: cls for cls in (PopRank, BPRMF, VBPR, DVBPR)}

__all__ = ["MODELS", "BPRMF", "DVBPR", "PopRank", "VBPR"]
