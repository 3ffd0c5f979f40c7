"""Text search: "red floral summer dress" -> catalogue products, offline.

Two ways to put words and product photos in one space: a trained alignment between a frozen sentence encoder and
the index's image features (``train_alignment``, the default), or a joint CLIP backbone whose own text tower
matches its image vectors (``--model clip``). ``TextSearcher`` answers queries with either.
"""

from fashionrec.text.searcher import MAX_QUERY_CHARS, TextSearcher
from fashionrec.text.train import AlignmentConfig, AlignmentResult, train_alignment

__all__ = ["MAX_QUERY_CHARS", "AlignmentConfig", "AlignmentResult", "TextSearcher", "train_alignment"]
