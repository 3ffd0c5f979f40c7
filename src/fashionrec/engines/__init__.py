"""Embedding engines for indexing: local threads (``fashionrec.indexing.embed_batches``) or Ray actors."""
